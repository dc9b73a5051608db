"""What RolloutWorkflow knows and how it keeps its status: fields, records, deadline, pauses.

The rollout is split by concern into mixins (traffic steps, blue-green, hooks,
publishing, the legacy bake); they share the fields declared here and the
bookkeeping below. Nothing here issues a command except the search-attribute
upsert, which only follows state changes.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Literal

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from activities.manifests import PrepareRolloutResult
    from activities.publish import PublishBundleResult
    from adapters import search_attributes as search
    from skyline.ab_report import build_ab_report, render_ab_report
    from skyline.manifest import Unit
    from skyline.manifest_ops import PromoteUnit, RestoreBuilding, SetCanary
    from skyline.observability import RolloutTelemetry
    from skyline.rollout import (
        ControlRequest,
        PromoteRequest,
        RolloutSpec,
        RolloutState,
        RolloutStatus,
    )
    from skyline.strategies import ABTestStrategy, PlanStep
    from workflows.book import Book
    from workflows.deadline import ProgressDeadline
    from workflows.details import current_details
    from workflows.edge_write import WritePath

Outcome = Literal["next", "full", "rollback"]
MAX_ANALYSES_KEPT = 50  # analyses kept in the status (every bake)


class RolloutFields:
    """The state every part of the rollout reads; set in RolloutWorkflow.__init__."""

    _spec: RolloutSpec
    _status: RolloutStatus
    _resume_state: RolloutState
    _paused: bool
    _rollback: ControlRequest | None
    _promote: PromoteRequest | None
    _promotions_requested: int
    _promotions_done: int
    _changes: int
    _prep: PrepareRolloutResult | None
    _plan: list[PlanStep]
    _decision_pending: str | None
    _indexed: tuple[str, float]
    _deadline: ProgressDeadline
    _prepublished: Unit | None
    _published: PublishBundleResult | None
    _telemetry: RolloutTelemetry
    _reference_tried: bool
    _preview_written: str | None

    if TYPE_CHECKING:  # provided by other parts; declared so each part type-checks alone

        async def _write(
            self,
            mutation: SetCanary | PromoteUnit | RestoreBuilding,
            why: str,
            path: WritePath = "activities",
        ) -> int: ...
        async def _bake(self, bake_seconds: float, experiment: bool = False) -> Outcome: ...
        async def _do_rollback(self) -> RolloutStatus: ...
        async def _notify(self, event: str) -> None: ...


class RolloutBook(RolloutFields, Book[RolloutStatus]):
    def _answered(self, asked: int) -> int:
        """How many promote updates a weight write just answered: those asked before it began.

        One that came while the write was in flight asked for the next weight (or, in full, the
        promotion) and is answered by that; before this patch it was answered by this write,
        so `promote --full` sent during the first weight's write answered "promoting"."""
        if workflow.patched("promote-answered-by-its-own-write"):
            return asked
        return self._promotions_requested

    def _set_state(self, state: RolloutState) -> None:
        self._status.state = state
        if state != "paused":
            self._resume_state = state
        self._status.updated_at = workflow.now()
        self._index()

    def _index(self) -> None:
        """Keep the UI's list filterable by state and weight (only when they change)."""
        current = (self._status.state, float(self._status.weight))
        # Only rollouts started with Skyline's attributes (the API always sets them)
        # are indexed: a namespace without them registered would fail every upsert.
        indexed = workflow.info().typed_search_attributes.get(search.APARTMENT) is not None
        if indexed and current != self._indexed:
            self._indexed = current
            updates: list[SearchAttributeUpdate[Any]] = [
                search.STATE.value_set(current[0]),
                search.WEIGHT.value_set(current[1]),
            ]
            # Rollouts started before the API set unit and strategy get them with their next
            # state change, so the UI's list reads the same for them (patched: replays of
            # histories without it stay as they were).
            unlabelled = workflow.info().typed_search_attributes.get(search.UNIT) is None
            if unlabelled and workflow.patched("index-unit-and-strategy"):
                updates += [
                    search.UNIT.value_set(self._spec.unit_id),
                    search.STRATEGY.value_set(self._spec.strategy.kind),
                ]
            workflow.upsert_search_attributes(updates)
        workflow.set_current_details(current_details(self._status))

    def _position(self) -> tuple[int, float]:
        return self._status.step, self._status.weight

    def _recorded(self) -> None:
        workflow.set_current_details(current_details(self._status))

    def _auto_rollback(self) -> bool:
        return self._spec.strategy.auto_rollback

    def _deadline_reason(self) -> str:
        return (
            f"progress deadline exceeded: {self._spec.max_duration_seconds:g}s of active time "
            "(time paused by a human not counted)"
        )

    def _finish(self, state: RolloutState, reason: str) -> RolloutStatus:
        self._status.promotion_blocked = None
        self._paused = False
        self._status.paused_reason = None
        self._status.reason = reason
        self._set_state(state)
        self._record(state, "skyline", reason)
        self._telemetry.finished(state)
        return self._status

    def _report_ab(self) -> None:
        """An A/B test's report, whenever it ends (pure: computed from the status, no commands)."""
        if not isinstance(self._spec.strategy, ABTestStrategy):
            return
        report = build_ab_report(self._status)
        self._status.ab_report = report
        self._status.report = render_ab_report(report)
        workflow.set_current_details(current_details(self._status))

    def _interrupted(self) -> bool:
        return self._rollback is not None or self._promote is not None

    async def _hold_while_paused(self) -> None:
        """Every wait of a paused rollout goes through here: it ends on resume, promote or rollback."""
        while self._paused and not self._interrupted():
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: not self._paused or self._interrupted(), timeout=self._deadline_timeout()
                )
            self._check_deadline()
