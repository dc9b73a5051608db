"""Bookkeeping RolloutWorkflow and FleetRolloutWorkflow share: the audit trail, pauses, the deadline.

Each workflow's book (rollout_state.py, fleet_state.py) says where it stands
(`_position`), how it shows a state (`_set_state`) and whether a missed
deadline rolls back (`_auto_rollback`); the records and the deadline rule
are written once, here.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Generic, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from skyline.fleet import FleetStatus
    from skyline.rollout import ControlRequest, HistoryEntry, RolloutStatus
    from workflows.deadline import ProgressDeadline

S = TypeVar("S", RolloutStatus, FleetStatus)


class Book(Generic[S]):
    _status: S
    _paused: bool
    _rollback: ControlRequest | None
    _deadline: ProgressDeadline

    # ----- what a workflow's book provides --------------------------------------------

    def _position(self) -> tuple[int, float]:
        """(step or batch, weight) for the audit trail."""
        raise NotImplementedError

    def _set_state(self, state: Any) -> None:
        raise NotImplementedError

    def _auto_rollback(self) -> bool:
        raise NotImplementedError

    def _deadline_reason(self) -> str:
        raise NotImplementedError

    def _recorded(self) -> None:
        """After each record (the rollout refreshes the UI's details)."""

    # ----- written once ---------------------------------------------------------------

    def _record(self, action: str, actor: str, reason: str, revision: int | None = None) -> None:
        step, weight = self._position()
        self._status.history.append(
            HistoryEntry(
                at=workflow.now(),
                action=action,
                actor=actor,
                reason=reason,
                state=self._status.state,
                step=step,
                weight=weight,
                revision=revision,
            )
        )
        self._status.updated_at = workflow.now()
        self._recorded()

    def _pause_for(self, reason: str) -> None:
        self._paused = True
        self._status.paused_reason = reason
        self._set_state("paused")
        self._record("pause", "skyline", reason)

    def _deadline_timeout(self, cap: float | None = None) -> timedelta | None:
        return self._deadline.timeout(workflow.now(), cap)

    def _check_deadline(self) -> None:
        """Past the deadline: roll back, or pause when auto_rollback is off (once)."""
        left = self._deadline.left(workflow.now())
        if left is None or left > 0 or self._rollback is not None:
            return
        self._deadline.fired = True
        reason = self._deadline_reason()
        if self._auto_rollback():
            self._rollback = ControlRequest(actor="skyline", reason=reason)
        else:
            self._pause_for(reason)
