"""Write a manifest change, then make the edge serve it: the pair every workflow repeats.

The edge sync purges the manifest path and reads it back until the edge
serves the new revision, so the step that follows (bake, report success)
only starts once browsers can see the change.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.cdn import CdnActivities, SyncManifestInput
    from activities.manifests import ApplyManifestChangeInput, ManifestActivities
    from skyline.manifest import ManifestChange
    from skyline.manifest_ops import PromoteUnit, RestoreBuilding, SetCanary
    from workflows import options


async def sync_edge(apartment: str, revision: int, key: str | None = None, what: str = "") -> None:
    await workflow.execute_activity_method(
        CdnActivities.sync_manifest_to_edge,
        SyncManifestInput(apartment=apartment, revision=revision, key=key),
        summary=what or f"purge and verify revision {revision}",
        **options.EDGE_SYNC,
    )


async def write_and_sync(
    apartment: str, change: ManifestChange, mutation: SetCanary | PromoteUnit | RestoreBuilding, why: str
) -> int:
    """Apply `mutation` as a new revision of the apartment's manifest; return it once the edge serves it."""
    result = await workflow.execute_activity_method(
        ManifestActivities.apply_manifest_change,
        ApplyManifestChangeInput(apartment=apartment, change=change, mutation=mutation),
        summary=why,
        **options.MANIFEST,
    )
    await sync_edge(apartment, result.revision)
    return result.revision
