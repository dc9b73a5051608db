"""How a rollout ends: promoted, rolled back, or held for a human decision first.

A rollback accepted while the promotion is being written is honoured as soon
as the write lands (the table in skyline/controls.py defers it): the building
goes back to last-known-good and the rollout ends rolled back, never
"succeeded" with the pager still ringing.
"""

from __future__ import annotations

from typing import Literal

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from skyline.manifest import Unit
    from skyline.manifest_ops import PromoteUnit, RestoreBuilding
    from skyline.rollout import ControlRequest, RolloutStatus
    from workflows.edge_write import WritePath
    from workflows.hooks import HookSteps
    from workflows.publishing import PublishSteps


def rollback_path() -> WritePath:
    """The shortest path: restore and purge inside the workflow task, as one local activity."""
    if not workflow.patched("rollback-local-activities"):
        return "activities"
    return "one_local" if workflow.patched("rollback-one-local-activity") else "local"


class Endings(HookSteps, PublishSteps):
    async def _do_rollback(self) -> RolloutStatus:
        req = self._rollback or ControlRequest(actor="skyline", reason="rollback")
        reason = f"{req.reason or 'rolled back'} (by {req.actor})"
        if self._prep is None or not self._status.revisions:
            await self._unpublish_untrafficked()
            self._finish("rolled_back", f"{reason}; no traffic had moved, manifest untouched")
        else:
            revision = await self._write(
                RestoreBuilding(building=self._spec.building, snapshot=self._prep.snapshot),
                f"rollback of {self._spec.unit_key}: {req.reason}",
                rollback_path(),
            )
            self._status.weight = 0
            self._record(
                "restored", req.actor, f"building restored from revision {self._prep.base_revision}", revision
            )
            self._finish("rolled_back", reason)
        self._report_ab()
        await self._notify("rollback")
        return self._status

    async def _promote_unit(self, unit: Unit) -> RolloutStatus:
        if not await self._confirm_promotion():
            return await self._do_rollback()
        self._set_state("promoting")
        revision = await self._write(
            PromoteUnit(building=self._spec.building, unit_id=unit.id), f"promote {unit.id}"
        )
        self._status.weight = 100
        self._record("promoted", "skyline", f"{unit.id} is the active unit", revision)
        self._promotions_done = self._promotions_requested
        if self._rollback is not None and workflow.patched("rollback-while-promoting"):
            # Accepted while the promotion was being written: honour it now.
            return await self._do_rollback()
        self._finish("succeeded", f"{unit.id} promoted to active unit")
        self._report_ab()
        await self._notify("post_rollout")
        return self._status

    async def _await_decision(
        self, unit: Unit, why: str, awaiting: Literal["scheduled_promotion", "decision"] = "decision"
    ) -> RolloutStatus:
        """Hold at the current weight until a human (or a schedule) promotes or rolls back."""
        self._decision_pending = why
        self._status.awaiting = awaiting
        self._pause_for(f"{why}: promote (full) to make {unit.id} active, or roll back")
        self._deadline.hold(workflow.now())  # waiting for a human or a schedule by design
        await workflow.wait_condition(self._interrupted)
        self._deadline.release(workflow.now())
        self._decision_pending = None
        self._status.awaiting = None
        if self._rollback is not None:
            return await self._do_rollback()
        self._promote = None
        return await self._promote_unit(unit)
