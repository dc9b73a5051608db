"""RolloutWorkflow: one progressive rollout of one unit into one building.

Deterministic orchestration only: every side effect is an activity, time is
`workflow.now()`. The parts, each in a module of its own:

- controls (workflows/controls.py + the table in skyline/controls.py): every
  control is applied, deferred or refused, never accepted and dropped;
- traffic steps and the judge's bake (traffic_steps.py, judged_bake.py);
- blue-green (blue_green.py), webhooks (hooks.py), publishing (publishing.py);
- how it ends (endings.py); the bookkeeping they share (rollout_state.py);
- the bake of rollouts started before the sequential judge (legacy_bake.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, ClassVar

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.manifests import ManifestActivities, PrepareRolloutInput
    from activities.schedules import ScheduleActivities
    from skyline.controls import ROLLOUT_TABLE, Answer, Control
    from skyline.manifest import ManifestChange
    from skyline.manifest_ops import PromoteUnit, RestoreBuilding, SetCanary
    from skyline.observability import RolloutTelemetry
    from skyline.rollout import (
        TERMINAL_STATES,
        ControlRequest,
        PromoteRequest,
        RolloutInput,
        RolloutStatus,
        promotion_schedule_id,
    )
    from skyline.strategies import BlueGreenStrategy, plan_steps
    from skyline.windows import PromotionBlocked
    from workflows import options
    from workflows.blue_green import BlueGreenSteps
    from workflows.controls import ControlSurface
    from workflows.deadline import ProgressDeadline
    from workflows.edge_write import WritePath, write_and_sync
    from workflows.hooks import ACTIVITY_FAILED, cause
    from workflows.judged_bake import JudgedBake
    from workflows.legacy_bake import LegacyBake
    from workflows.rollout_state import Outcome
    from workflows.traffic_steps import TrafficSteps


@workflow.defn
class RolloutWorkflow(ControlSurface, TrafficSteps, BlueGreenSteps, JudgedBake, LegacyBake):
    TABLE: ClassVar[Mapping[Any, Mapping[Control, Answer]]] = ROLLOUT_TABLE

    @workflow.init
    def __init__(self, inp: RolloutInput) -> None:
        spec = inp.spec
        now = workflow.now()
        self._spec = spec
        self._status = RolloutStatus(
            rollout_id=inp.rollout_id,
            apartment=spec.apartment,
            building=spec.building,
            unit_id=spec.unit_id,
            version=spec.version,
            state="publishing",
            steps=[step.weight for step in plan_steps(spec.strategy)],
            strategy=spec.strategy.kind,
            step=-1,
            weight=0,
            started_at=now,
            updated_at=now,
        )
        self._resume_state = "publishing"
        self._paused = False
        self._rollback = None
        self._promote = None
        self._promotions_requested = 0
        self._promotions_done = 0
        self._changes = 0
        self._prep = None
        self._plan = plan_steps(spec.strategy)
        self._decision_pending = None
        self._indexed = ("publishing", 0.0)
        self._deadline = ProgressDeadline(spec.max_duration_seconds, now)
        self._prepublished = inp.prepublished
        self._published = None
        self._telemetry = RolloutTelemetry(spec.apartment)
        self._reference_tried = False
        self._preview_written = None  # change id of the blue-green preview, until cleared
        self._record("start", spec.actor, spec.reason)

    @workflow.query
    def status(self) -> RolloutStatus:
        return self._status

    @workflow.signal(name="promotion_blocked_signal")
    def promotion_blocked_signal(self, blocked: PromotionBlocked | None) -> None:
        """The promotion schedule's check: why a freeze or release window blocks it (None: it does not)."""
        previous = self._status.promotion_blocked
        if self._status.state in TERMINAL_STATES:
            return
        self._status.promotion_blocked = blocked
        if blocked is not None and (previous is None or previous.reason != blocked.reason):
            self._record(f"promotion blocked by {blocked.kind}", "schedule", blocked.reason)
        elif blocked is None and previous is not None:
            self._record("promotion unblocked", "schedule", "the release window is open")

    # ----- the control surface (workflows/controls.py) ----------------------------------

    def _phase(self) -> str:
        state = self._status.state
        if state in TERMINAL_STATES:
            return "ended"
        if self._rollback is not None:
            return "rolling_back"
        if state == "promoting":
            return "promoting"
        if self._status.waiting_for:
            return "waiting_for_hook"
        if self._decision_pending:
            return "awaiting_decision"
        if self._resume_state == "publishing":
            return "publishing_paused" if self._paused else "publishing"
        return "paused" if self._paused else "progressing"

    def _facts(self) -> dict[str, str]:
        return {
            "state": self._status.state,
            "waiting_for": self._status.waiting_for or "",
            "decision": self._decision_pending or "",
        }

    def _unpause(self) -> None:
        self._paused = False
        self._deadline.release(workflow.now())
        self._status.paused_reason = None
        self._set_state(self._resume_state)

    async def _apply(self, control: Control, req: ControlRequest) -> None:
        if control == "pause":
            self._paused = True
            self._deadline.hold(workflow.now())  # a human's pause does not eat the deadline
            self._set_state("paused")
            self._status.paused_reason = f"paused by {req.actor}: {req.reason or 'no reason given'}"
        elif control == "resume":
            self._unpause()
        elif control == "promote":
            assert isinstance(req, PromoteRequest)
            self._promote = req
            self._promotions_requested += 1
            if self._paused:
                self._unpause()
        else:
            self._rollback = req

    async def _settle(self, control: Control, req: ControlRequest) -> None:
        if control == "promote":  # answers once the next weight (or the promotion) is live
            ticket = self._promotions_requested
            await workflow.wait_condition(
                lambda: self._promotions_done >= ticket or self._status.state in TERMINAL_STATES
            )
        elif control == "rollback":  # answers once last-known-good is served at the edge
            await workflow.wait_condition(lambda: self._status.state in TERMINAL_STATES)

    def _snapshot(self) -> RolloutStatus:
        return self._status

    # ----- what every part uses --------------------------------------------------------

    async def _write(
        self, mutation: SetCanary | PromoteUnit | RestoreBuilding, why: str, path: WritePath = "activities"
    ) -> int:
        self._changes += 1
        info = workflow.info()
        change = ManifestChange(
            id=f"{info.workflow_id}/{info.run_id}/{self._changes}", actor=self._spec.actor, reason=why
        )
        if path == "activities" and workflow.patched("write-and-serve"):
            path = "one"  # one activity and one workflow task per write instead of two of each
        revision = await write_and_sync(self._spec.apartment, change, mutation, why, path)
        self._status.revisions.append(revision)
        self._index()
        return revision

    async def _bake(self, bake_seconds: float, experiment: bool = False) -> Outcome:
        """Observe the current weight; rollouts started before the sequential judge keep their old bake."""
        if workflow.patched("sequential-judge"):
            return await self._judged_bake(bake_seconds, experiment)
        return await self._bake_legacy(bake_seconds, experiment)

    # ----- the rollout -----------------------------------------------------------------

    @workflow.run
    async def run(self, inp: RolloutInput) -> RolloutStatus:
        self._telemetry.started()
        status = await self._run()
        await self._clear_preview()
        if self._spec.promotion.mode == "scheduled":
            # The schedule has nothing left to promote; best effort, it may never have existed.
            with contextlib.suppress(ActivityError):
                await workflow.execute_activity_method(
                    ScheduleActivities.delete_schedule,
                    promotion_schedule_id(status.rollout_id),
                    summary="delete the promotion schedule",
                    **options.PREPARE,
                )
        return status

    async def _run(self) -> RolloutStatus:
        spec = self._spec
        try:
            self._prep = await workflow.execute_activity_method(
                ManifestActivities.prepare_rollout,
                PrepareRolloutInput(
                    apartment=spec.apartment,
                    building=spec.building,
                    unit_id=spec.unit_id,
                    version=spec.version,
                    force=spec.force,
                    dependencies=spec.dependencies,
                    compatibility=spec.compatibility,
                ),
                summary="validate against the current manifest",
                **options.PREPARE,
            )
            self._status.base_revision = self._prep.base_revision
            self._status.baseline_unit = self._prep.baseline_unit
            unit = self._prepublished or await self._publish()
            self._status.canary = unit
        except ActivityError as err:
            await self._unpublish_untrafficked()
            return self._finish("failed", f"{cause(err)}; manifest untouched")
        for hook in self._hooks("pre_rollout"):
            problem = await self._call_hook(hook)
            if problem:
                await self._unpublish_untrafficked()
                return self._finish("failed", f"pre-rollout webhook refused: {problem}; manifest untouched")
        self._resume_state = "progressing"
        if not self._paused:
            self._set_state("progressing")
        try:
            if isinstance(spec.strategy, BlueGreenStrategy):
                return await self._blue_green(unit)
            return await self._traffic_steps(unit)
        except ACTIVITY_FAILED as err:  # a step's activity, or a rollback's local restore
            self._rollback = ControlRequest(actor="skyline", reason=f"step failed: {cause(err)}")
            try:
                return await self._do_rollback()
            except ACTIVITY_FAILED as again:
                return self._finish("failed", f"step failed and rollback failed: {cause(again)}")
