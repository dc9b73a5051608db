"""What FleetRolloutWorkflow knows and how it keeps its status: fields, records, deadline, waits."""

from __future__ import annotations

import contextlib
from typing import Any

from temporalio import workflow
from temporalio.workflow import ChildWorkflowHandle

with workflow.unsafe.imports_passed_through():
    from skyline.fleet import ApartmentState, FleetSpec, FleetState, FleetStatus
    from skyline.rollout import ControlRequest, RolloutStatus
    from workflows import indexing
    from workflows.book import Book
    from workflows.deadline import ProgressDeadline


class FleetBook(Book[FleetStatus]):
    """Set in FleetRolloutWorkflow.__init__."""

    _spec: FleetSpec
    _status: FleetStatus
    _paused: bool
    _rollback: ControlRequest | None
    _next_now: bool
    _children: dict[str, ChildWorkflowHandle[Any, RolloutStatus]]
    _deadline: ProgressDeadline
    _base_revisions: dict[str, int]
    _publishing: bool
    _between_batches: bool
    _unit_id: str | None

    def _set_state(self, state: FleetState) -> None:
        self._status.state = state
        self._status.updated_at = workflow.now()
        done = sum(1 for a in self._status.apartments.values() if a.state == "succeeded")
        workflow.set_current_details(
            f"**{self._spec.unit_id}@{self._spec.version}** fleet · state **{state}** · "
            f"batch {self._status.batch + 1}/{len(self._status.batches)} · "
            f"{done}/{len(self._status.apartments)} apartments done"
            + (f"\n\n{self._status.reason}" if self._status.reason else "")
        )
        indexing.index_state(state)

    def _position(self) -> tuple[int, float]:
        return self._status.batch, 0

    def _auto_rollback(self) -> bool:
        return self._spec.strategy.auto_rollback

    def _deadline_reason(self) -> str:
        return f"progress deadline exceeded: {self._spec.max_duration_seconds:g}s of active time"

    def _mark(self, apartment: str, state: ApartmentState, reason: str | None = None) -> None:
        entry = self._status.apartments[apartment]
        entry.state = state
        entry.reason = reason
        if state == "rolled_back":
            entry.weight = 0  # restored: nobody gets the new unit here any more
        self._status.updated_at = workflow.now()

    def _finish(self, state: FleetState, reason: str) -> FleetStatus:
        self._status.reason = reason
        self._status.paused_reason = None
        self._set_state(state)
        self._record(state, "skyline", reason)
        return self._status

    async def _wait(self, condition: Any, cap: float | None = None) -> None:
        """Wait for a condition while enforcing the deadline."""
        while not condition():
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(condition, timeout=self._deadline_timeout(cap))
            self._check_deadline()
            if cap is not None:
                return
