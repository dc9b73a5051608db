"""The control surface of RolloutWorkflow and FleetRolloutWorkflow, written once.

Controls arrive as Updates (the API: validated, answered with the new status
or refused before anything is written to the history) or as same-named
signals (the Temporal UI, a plain Temporal client: the sender is not
authenticated, so the actor is recorded as unverified). Both go through
`_control`, which asks the table in skyline/controls.py: a control is applied,
deferred to a stated point, or refused with the reason; never accepted and
then dropped.

A workflow class says which table it uses, what phase it is in, how to apply
an accepted control and what an update waits for before it answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from skyline.controls import Answer, Control, decide
    from skyline.fleet import FleetStatus
    from skyline.rollout import ControlRequest, PromoteRequest, RolloutStatus, via_temporal

# What an update answers with: the workflow's status (the data converter picks the model).
Status = RolloutStatus | FleetStatus


class ControlSurface:
    TABLE: ClassVar[Mapping[Any, Mapping[Control, Answer]]]

    # ----- what a workflow provides ---------------------------------------------------

    def _phase(self) -> str:
        raise NotImplementedError

    def _facts(self) -> dict[str, str]:
        """Words the table's reasons quote: state, waiting_for, decision."""
        return {}

    async def _apply(self, control: Control, req: ControlRequest) -> None:
        raise NotImplementedError

    async def _settle(self, control: Control, req: ControlRequest) -> None:
        """What an update waits for before it answers (nothing by default)."""

    def _snapshot(self) -> Status:
        raise NotImplementedError

    if TYPE_CHECKING:  # provided by the workflow's bookkeeping (never shadow it at run time)

        def _record(self, action: str, actor: str, reason: str, revision: int | None = None) -> None: ...

    # ----- one path for every control -------------------------------------------------

    def _answer(self, control: Control) -> Answer:
        return decide(self.TABLE, self._phase(), control, **self._facts())

    def _check(self, control: Control) -> None:
        answer = self._answer(control)
        if not answer.accepted:
            raise ApplicationError(answer.reason, type="InvalidControl", non_retryable=True)

    async def _control(self, control: Control, req: ControlRequest) -> bool:
        answer = self._answer(control)
        if not answer.accepted:
            self._record(f"refused {control}", req.actor, answer.reason)
            return False
        await self._apply(control, req)
        label = "promote full" if isinstance(req, PromoteRequest) and req.full else control
        reason = req.reason
        if answer.kind == "deferred":
            reason = f"{req.reason} [deferred: {answer.reason}]".strip()
        self._record(label, req.actor, reason)
        return True

    async def _update(self, control: Control, req: ControlRequest) -> Status:
        if await self._control(control, req):
            await self._settle(control, req)
        return self._snapshot()

    @workflow.update
    async def pause(self, req: ControlRequest) -> Status:
        return await self._update("pause", req)

    @pause.validator
    def _validate_pause(self, req: ControlRequest) -> None:
        self._check("pause")

    @workflow.update
    async def resume(self, req: ControlRequest) -> Status:
        return await self._update("resume", req)

    @resume.validator
    def _validate_resume(self, req: ControlRequest) -> None:
        self._check("resume")

    @workflow.update
    async def promote(self, req: PromoteRequest) -> Status:
        return await self._update("promote", req)

    @promote.validator
    def _validate_promote(self, req: PromoteRequest) -> None:
        self._check("promote")

    @workflow.update
    async def rollback(self, req: ControlRequest) -> Status:
        return await self._update("rollback", req)

    @rollback.validator
    def _validate_rollback(self, req: ControlRequest) -> None:
        self._check("rollback")

    @workflow.signal(name="pause_signal")
    async def pause_signal(self, req: ControlRequest) -> None:
        await self._control("pause", via_temporal(req))

    @workflow.signal(name="resume_signal")
    async def resume_signal(self, req: ControlRequest) -> None:
        await self._control("resume", via_temporal(req))

    @workflow.signal(name="promote_signal")
    async def promote_signal(self, req: PromoteRequest) -> None:
        await self._control("promote", via_temporal(req))

    @workflow.signal(name="rollback_signal")
    async def rollback_signal(self, req: ControlRequest) -> None:
        await self._control("rollback", via_temporal(req))
