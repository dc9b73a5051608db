"""Write a manifest change, then make the edge serve it: the pair every workflow repeats.

The edge sync purges the manifest path and reads it back until the edge
serves the new revision, so the step that follows (bake, report success)
only starts once browsers can see the change.
"""

from __future__ import annotations

from typing import Literal

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.cdn import CdnActivities, SyncManifestInput
    from activities.emergency import EmergencyActivities
    from activities.manifests import ApplyManifestChangeInput, ManifestActivities
    from skyline.manifest import ManifestChange
    from skyline.manifest_ops import PromoteUnit, RestoreBuilding, SetCanary
    from workflows import options


async def sync_edge(
    apartment: str, revision: int, key: str | None = None, what: str = "", local: bool = False
) -> None:
    inp = SyncManifestInput(apartment=apartment, revision=revision, key=key)
    summary = what or f"purge and verify revision {revision}"
    if local:
        await workflow.execute_local_activity_method(
            CdnActivities.sync_manifest_to_edge, inp, summary=summary, **options.EDGE_SYNC_LOCAL
        )
        return
    await workflow.execute_activity_method(
        CdnActivities.sync_manifest_to_edge, inp, summary=summary, **options.EDGE_SYNC
    )


# How a write reaches the edge: two activities (steps recorded before
# "steps-local-activities"), two local activities (rollbacks recorded before
# "rollback-one-local-activity"), or one local activity doing both: every write
# today, named restore_and_serve for a rollback ("one_local") and write_and_serve
# for the others ("one_local_write").
WritePath = Literal["activities", "local", "one_local", "one_local_write"]

# Since this patch a rollout's short activities run inside its workflow tasks: the
# preparation, the edge and smoke gates, each write with its purge and verify (one local
# activity), each look at Prometheus. A step then costs one workflow task per timer
# instead of one per activity (six per step at two looks), which was most of what the
# Temporal server and the worker spent per rollout (docs/benchmarks.md). All are short
# (milliseconds to seconds; the edge check is bounded by edge_verify_attempts) and
# idempotent (a write is found by its change id), so a killed worker's workflow task is
# retried and repeats them; the upload and webhooks stay regular activities.
STEPS_LOCAL = "steps-local-activities"


def steps_local() -> bool:
    """Whether this rollout writes and looks in local activities (False for older histories)."""
    return workflow.patched(STEPS_LOCAL)


async def write_and_sync(
    apartment: str,
    change: ManifestChange,
    mutation: SetCanary | PromoteUnit | RestoreBuilding,
    why: str,
    path: WritePath = "activities",
) -> int:
    """Apply `mutation` as a new revision of the apartment's manifest; return it once the edge serves it."""
    inp = ApplyManifestChangeInput(apartment=apartment, change=change, mutation=mutation)
    if path in ("one_local", "one_local_write"):
        both = EmergencyActivities
        one = both.restore_and_serve if path == "one_local" else both.write_and_serve
        served = await workflow.execute_local_activity_method(
            one,
            inp,
            summary=why,
            **options.EDGE_SYNC_LOCAL,
        )
        return served.revision
    if path == "local":
        result = await workflow.execute_local_activity_method(
            ManifestActivities.apply_manifest_change, inp, summary=why, **options.MANIFEST_LOCAL
        )
    else:
        result = await workflow.execute_activity_method(
            ManifestActivities.apply_manifest_change, inp, summary=why, **options.MANIFEST
        )
    await sync_edge(apartment, result.revision, local=path == "local")
    return result.revision
