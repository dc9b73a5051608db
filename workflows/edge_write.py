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


# How a write reaches the edge: one activity doing both (every step of rollouts
# started since "write-and-serve"), two activities (every step before it), two
# local activities (rollbacks recorded before "rollback-one-local-activity"), or
# one local activity doing both (the emergency rollback today).
WritePath = Literal["one", "activities", "local", "one_local"]


async def write_and_sync(
    apartment: str,
    change: ManifestChange,
    mutation: SetCanary | PromoteUnit | RestoreBuilding,
    why: str,
    path: WritePath = "activities",
) -> int:
    """Apply `mutation` as a new revision of the apartment's manifest; return it once the edge serves it."""
    inp = ApplyManifestChangeInput(apartment=apartment, change=change, mutation=mutation)
    if path == "one":
        served = await workflow.execute_activity_method(
            EmergencyActivities.write_and_serve, inp, summary=why, **options.WRITE_AND_SERVE
        )
        return served.revision
    if path == "one_local":
        served = await workflow.execute_local_activity_method(
            EmergencyActivities.restore_and_serve, inp, summary=why, **options.EDGE_SYNC_LOCAL
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
