"""The emergency rollback's shortest path: restore, purge and verify in one local activity.

The same two steps every manifest change takes (activities/manifests.py, then
activities/cdn.py), run back to back in the worker so the rollback costs the
workflow task one local-activity round trip instead of two. A retry repeats
both: the write is idempotent by its change id, so it is found, not repeated.
"""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity

from activities.cdn import CdnActivities, SyncManifestInput
from activities.manifests import ApplyManifestChangeInput, ManifestActivities


class RestoreAndServeResult(BaseModel):
    revision: int
    applied: bool
    served_revision: int
    purges: int


class EmergencyActivities:
    def __init__(self, manifests: ManifestActivities, cdn: CdnActivities) -> None:
        self.manifests = manifests
        self.cdn = cdn

    @activity.defn
    def restore_and_serve(self, inp: ApplyManifestChangeInput) -> RestoreAndServeResult:
        written = self.manifests.apply_manifest_change(inp)
        served = self.cdn.sync_manifest_to_edge(
            SyncManifestInput(apartment=inp.apartment, revision=written.revision)
        )
        return RestoreAndServeResult(
            revision=written.revision,
            applied=written.applied,
            served_revision=served.served_revision,
            purges=served.purges,
        )
