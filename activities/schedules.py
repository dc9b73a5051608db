"""Activities behind scheduled promotion: they talk to Temporal itself and read release windows."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ValidationError
from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from adapters.manifest_store import ManifestStore
from skyline import control_proof
from skyline.rollout import TERMINAL_STATES, ControlRequest, PromoteRequest, RolloutStatus
from skyline.windows import PromotionBlocked, PromotionWindows, blocked


class CheckPromotionInput(BaseModel):
    rollout_id: str
    apartment: str


class CheckPromotionResult(BaseModel):
    decision: Literal["promote", "wait", "skip"]
    reason: str
    next_opening: datetime | None = None


class PromoteRolloutInput(BaseModel):
    rollout_id: str
    actor: str
    reason: str
    actor_proof: str | None = None  # the API's schedule_proof of `actor`


class PromoteRolloutResult(BaseModel):
    state: str
    reason: str


class ScheduleActivities:
    def __init__(self, client: Client, store: ManifestStore, control_keys: Sequence[bytes] = ()) -> None:
        self.client = client
        self.store = store
        self.control_keys = tuple(control_keys)

    # The rollout is addressed by its handlers' names, so this module never imports
    # workflow code (the workflow imports this module for delete_schedule).
    async def _status(self, rollout_id: str) -> RolloutStatus | None:
        handle = self.client.get_workflow_handle(rollout_id)
        try:
            status: RolloutStatus = await handle.query("status", result_type=RolloutStatus)
            return status
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise

    async def _windows(self, apartment: str) -> PromotionWindows:
        found = await asyncio.to_thread(self.store.read, apartment)
        if found is None:
            return PromotionWindows()
        raw = getattr(found[0].apartment(apartment).config, "promotion_windows", None) or {}
        try:
            return PromotionWindows.model_validate(raw)
        except ValidationError as exc:
            raise ApplicationError(
                f"apartment {apartment!r} has invalid promotion_windows: {exc}", non_retryable=True
            ) from exc

    @activity.defn
    async def check_promotion(self, inp: CheckPromotionInput) -> CheckPromotionResult:
        """Promote only a rollout that waits for it, whose latest analysis passed, inside a window."""
        status = await self._status(inp.rollout_id)
        if status is None:
            return CheckPromotionResult(decision="skip", reason=f"no rollout {inp.rollout_id}")
        if status.state in TERMINAL_STATES:
            return CheckPromotionResult(decision="skip", reason=f"the rollout has ended ({status.state})")
        if status.awaiting != "scheduled_promotion":
            return CheckPromotionResult(
                decision="skip",
                reason=f"the rollout is not waiting for promotion yet ({status.state}, "
                f"step {status.step + 1}/{len(status.steps)})",
            )
        last = status.last_analysis
        if last is None or last.verdict != "pass":
            verdict = last.verdict if last else "missing"
            return CheckPromotionResult(
                decision="skip",
                reason=f"the latest analysis is {verdict}: {last.reason if last else 'none ran'}",
            )
        windows = await self._windows(inp.apartment)
        now = datetime.now(UTC)
        closed = blocked(now, windows)
        # The rollout's status says why it is (no longer) blocked: a person reads it there.
        await self._tell_rollout(inp.rollout_id, closed)
        if closed is None:
            return CheckPromotionResult(
                decision="promote", reason="latest analysis passed; release window open"
            )
        if closed.next_opens is None:
            return CheckPromotionResult(decision="skip", reason=closed.reason)
        return CheckPromotionResult(decision="wait", reason=closed.reason, next_opening=closed.next_opens)

    async def _tell_rollout(self, rollout_id: str, closed: PromotionBlocked | None) -> None:
        handle = self.client.get_workflow_handle(rollout_id)
        try:
            await handle.signal("promotion_blocked_signal", closed)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise

    @activity.defn
    async def promote_rollout(self, inp: PromoteRolloutInput) -> PromoteRolloutResult:
        handle = self.client.get_workflow_handle(inp.rollout_id)
        req: ControlRequest = PromoteRequest(actor=inp.actor, reason=inp.reason, full=True)
        # The worker vouches for the actor only if the API named it when it made the schedule;
        # a PromotionWorkflow a Temporal client started itself promotes "actor unverified".
        if control_proof.schedule_proof_checks(self.control_keys, inp.rollout_id, inp.actor, inp.actor_proof):
            req = control_proof.seal(self.control_keys, inp.rollout_id, "promote", req)
        try:
            status = await handle.execute_update("promote", req, result_type=RolloutStatus)
        except WorkflowUpdateFailedError as exc:
            return PromoteRolloutResult(state="refused", reason=str(exc.cause))
        return PromoteRolloutResult(state=status.state, reason=status.reason or "")

    @activity.defn
    async def delete_schedule(self, schedule_id: str) -> bool:
        try:
            await self.client.get_schedule_handle(schedule_id).delete()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True
