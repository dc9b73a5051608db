"""The control surface of RolloutWorkflow and FleetRolloutWorkflow, written once.

Controls arrive as Updates (the API: validated, answered with the new status
or refused before anything is written to the history) or as same-named
signals (the Temporal UI, a plain Temporal client: the sender is not
authenticated, so the actor is recorded as unverified). An update names its
actor verified only with the API's proof (skyline/control_proof.py), checked
in the validator; an update without one is recorded unverified like a signal.
Both go through `_control`, which asks the table in skyline/controls.py: a control is applied,
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
    from skyline import control_proof
    from skyline.control_proof import SignedApproval, SignedControl, SignedPromote, plain
    from skyline.controls import Answer, Control, decide
    from skyline.fleet import FleetStatus
    from skyline.pipeline import PipelineStatus
    from skyline.rollout import ControlRequest, PromoteRequest, RolloutStatus, via_temporal

# What an update answers with: the workflow's status (the data converter picks the model).
Status = RolloutStatus | FleetStatus | PipelineStatus


class ControlSurface:
    TABLE: ClassVar[Mapping[Any, Mapping[Control, Answer]]]
    # Nonces of the proofs this run accepted: a proof read from the history is not a second control.
    _proof_nonces: frozenset[str] = frozenset()

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

    def _answer(self, control: Control | str) -> Answer:
        return decide(self.TABLE, self._phase(), control, **self._facts())

    def _check(self, control: Control | str, req: SignedControl | SignedPromote | SignedApproval) -> None:
        # Runs when the update arrives, never on replay: the key is read here only.
        info = workflow.info()
        refused = control_proof.problem(
            control_proof.held(),
            info.workflow_id,
            control,
            req,
            now=workflow.now(),
            run_started=info.start_time,
            seen=self._proof_nonces,
        )
        if refused:
            raise ApplicationError(refused, type="InvalidControlProof", non_retryable=True)
        answer = self._answer(control)
        if not answer.accepted:
            raise ApplicationError(answer.reason, type="InvalidControl", non_retryable=True)

    def _verified(self, req: SignedControl | SignedPromote) -> ControlRequest:
        """The request as the audit shows it: the API's actor if it proved it, else "unverified".

        A function of the update's arguments only (validators do not run on replay): an
        accepted update with a proof had it checked when it arrived. Histories from before
        proofs replay with their actors as recorded then.
        """
        if req.proof is not None:
            self._proof_nonces = self._proof_nonces | {req.proof.nonce}
            return plain(req)
        if workflow.patched("control-proofs"):
            return via_temporal(plain(req))
        return plain(req)

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
    async def pause(self, req: SignedControl) -> Status:
        return await self._update("pause", self._verified(req))

    @pause.validator
    def _validate_pause(self, req: SignedControl) -> None:
        self._check("pause", req)

    @workflow.update
    async def resume(self, req: SignedControl) -> Status:
        return await self._update("resume", self._verified(req))

    @resume.validator
    def _validate_resume(self, req: SignedControl) -> None:
        self._check("resume", req)

    @workflow.update
    async def promote(self, req: SignedPromote) -> Status:
        return await self._update("promote", self._verified(req))

    @promote.validator
    def _validate_promote(self, req: SignedPromote) -> None:
        self._check("promote", req)

    @workflow.update
    async def rollback(self, req: SignedControl) -> Status:
        return await self._update("rollback", self._verified(req))

    @rollback.validator
    def _validate_rollback(self, req: SignedControl) -> None:
        self._check("rollback", req)

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
