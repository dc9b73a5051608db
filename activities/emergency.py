"""A manifest write and its purge-and-verify as one activity.

The same two steps every manifest change takes (activities/manifests.py, then
activities/cdn.py), run back to back in the worker, so a change costs the
workflow one activity and one workflow task instead of two of each:

- `write_and_serve`, a regular activity: every write of a rollout's steps and
  its promotion (rollouts started since the "write-and-serve" patch,
  workflows/rollout.py). Under a thousand rollouts at once the workflow tasks
  are the wall (docs/benchmarks.md), and this is five of a rollout's 23.
- `restore_and_serve`, a local activity: the emergency rollback's shortest path
  (one local-activity round trip inside the workflow task).

A retry repeats both: the write is idempotent by its change id, so it is found,
not repeated. While the edge is being verified the heartbeat still names the
write's base revision, so a retry looks for the earlier attempt from there
(activities/manifest_rules.py retry_base_hint) rather than from a purge count.
"""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity

from activities.beat import beat
from activities.cdn import CdnActivities, SyncManifestInput
from activities.manifests import ApplyManifestChangeInput, ManifestActivities


class WriteAndServeResult(BaseModel):
    revision: int
    applied: bool
    served_revision: int
    purges: int


RestoreAndServeResult = WriteAndServeResult  # the emergency rollback's name for it


class EmergencyActivities:
    def __init__(self, manifests: ManifestActivities, cdn: CdnActivities) -> None:
        self.manifests = manifests
        self.cdn = cdn

    @activity.defn
    def write_and_serve(self, inp: ApplyManifestChangeInput) -> WriteAndServeResult:
        written = self.manifests.apply_manifest_change(inp)
        base = written.revision - 1  # where a retry finds this write again
        served = self.cdn.serve(
            SyncManifestInput(apartment=inp.apartment, revision=written.revision), lambda _: beat(base)
        )
        return WriteAndServeResult(
            revision=written.revision,
            applied=written.applied,
            served_revision=served.served_revision,
            purges=served.purges,
        )

    @activity.defn
    def restore_and_serve(self, inp: ApplyManifestChangeInput) -> WriteAndServeResult:
        return self.write_and_serve(inp)
