"""ManifestUndoWorkflow: roll an apartment back to an earlier revision, after its rollouts ended."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.cdn import CdnActivities, SyncManifestInput
    from activities.manifests import ManifestActivities, UndoToRevisionInput
    from skyline.contracts import UndoInput, UndoResult
    from skyline.manifest import ManifestChange
    from workflows import options


@workflow.defn
class ManifestUndoWorkflow:
    @workflow.run
    async def run(self, inp: UndoInput) -> UndoResult:
        info = workflow.info()
        change = ManifestChange(
            id=f"{info.workflow_id}/{info.run_id}",
            actor=inp.actor,
            reason=f"undo to revision {inp.to_revision}: {inp.reason}",
        )
        result = await workflow.execute_activity_method(
            ManifestActivities.undo_to_revision,
            UndoToRevisionInput(apartment=inp.apartment, to_revision=inp.to_revision, change=change),
            summary=f"restore revision {inp.to_revision}",
            **options.MANIFEST,
        )
        await workflow.execute_activity_method(
            CdnActivities.sync_manifest_to_edge,
            SyncManifestInput(apartment=inp.apartment, revision=result.revision),
            summary=f"purge and verify revision {result.revision}",
            **options.EDGE_SYNC,
        )
        return UndoResult(apartment=inp.apartment, revision=result.revision, restored_from=inp.to_revision)
