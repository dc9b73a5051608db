"""Blue-green: stage the unit at 0 %, serve it on a preview manifest, then switch everyone in one write.

Switching back is one write too (the rollback restores last-known-good), and
a blue-green that ended leaves no stale preview behind.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.manifests import ClearPreviewInput, ManifestActivities, WritePreviewInput
    from skyline.manifest import ManifestChange, RolloutConfig, Unit
    from skyline.manifest_ops import PromoteUnit, SetCanary
    from skyline.rollout import RolloutStatus
    from skyline.strategies import BlueGreenStrategy
    from workflows import options
    from workflows.edge_write import sync_edge
    from workflows.hooks import cause
    from workflows.rollout_state import RolloutBook


class BlueGreenSteps(RolloutBook):
    if TYPE_CHECKING:  # TrafficSteps

        def _rollout_config(self, weight: float) -> RolloutConfig: ...

    async def _blue_green(self, unit: Unit) -> RolloutStatus:
        """Preview, smoke, then one write switches everyone; switching back is one write too."""
        strategy = self._spec.strategy
        assert isinstance(strategy, BlueGreenStrategy)
        self._changes += 1
        info = workflow.info()
        change = ManifestChange(
            id=f"{info.workflow_id}/{info.run_id}/preview",
            actor=self._spec.actor,
            reason="blue-green preview",
        )
        await self._stage(unit)
        preview = await workflow.execute_activity_method(
            ManifestActivities.write_preview_manifest,
            WritePreviewInput(
                apartment=self._spec.apartment,
                change=change,
                mutation=PromoteUnit(building=self._spec.building, unit_id=unit.id),
            ),
            summary="write the preview manifest",
            **options.MANIFEST,
        )
        await sync_edge(
            self._spec.apartment, preview.base_revision, preview.key, "purge and verify the preview manifest"
        )
        self._preview_written = change.id
        self._record("preview", "skyline", f"preview manifest at {preview.key} serves {unit.id}")
        if strategy.preview_seconds > 0:
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._interrupted() and not self._paused,
                    timeout=timedelta(seconds=strategy.preview_seconds),
                )
        await self._hold_while_paused()
        if self._rollback is not None:
            return await self._do_rollback()
        self._promote = None
        started = workflow.now()
        self._status.step = 0
        asked = self._promotions_requested
        revision = await self._write(
            PromoteUnit(building=self._spec.building, unit_id=unit.id), f"blue-green switch to {unit.id}"
        )
        self._status.weight = 100
        switch_seconds = (workflow.now() - started).total_seconds()
        self._record("switched", "skyline", f"0 → 100% in one write, live in {switch_seconds:.2f}s", revision)
        self._telemetry.step(100)
        self._promotions_done = self._answered(asked)
        outcome = await self._bake(self._plan[0].bake_seconds)
        if outcome == "rollback":
            return await self._do_rollback()
        self._finish("succeeded", f"{unit.id} switched in and baked")
        await self._notify("post_rollout")
        return self._status

    async def _stage(self, unit: Unit) -> None:
        """The new unit must be in the building before the preview can point at it."""
        self._status.step = 0
        revision = await self._write(
            SetCanary(building=self._spec.building, unit=unit, rollout=self._rollout_config(0)),
            f"{unit.id} staged at 0% for blue-green",
        )
        self._record("staged", "skyline", f"{unit.id} in the manifest at 0%", revision)

    async def _clear_preview(self) -> None:
        """A blue-green that ended leaves no stale preview: it serves production, 'no candidate'."""
        written = self._preview_written
        if written is None or not workflow.patched("preview-cleared"):
            return
        self._preview_written = None
        info = workflow.info()
        why = f"no candidate: {self._spec.unit_key} {self._status.state.replace('_', ' ')}"
        try:
            cleared = await workflow.execute_activity_method(
                ManifestActivities.clear_preview_manifest,
                ClearPreviewInput(
                    apartment=self._spec.apartment,
                    written=written,
                    change=ManifestChange(
                        id=f"{info.workflow_id}/{info.run_id}/preview-cleared", actor="skyline", reason=why
                    ),
                ),
                summary="clear the preview manifest",
                **options.MANIFEST,
            )
            if cleared.cleared and cleared.revision is not None:
                await sync_edge(
                    self._spec.apartment,
                    cleared.revision,
                    cleared.key,
                    "purge and verify the cleared preview",
                )
        except ActivityError as err:
            self._record(
                "preview not cleared", "skyline", f"the preview may still serve the candidate: {cause(err)}"
            )
            return
        if cleared.cleared:
            self._record("preview cleared", "skyline", f"{cleared.key} serves production ({why})")
        else:
            self._record("preview left", "skyline", f"{cleared.key} was rewritten by another rollout since")
