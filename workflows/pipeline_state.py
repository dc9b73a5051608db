"""What ReleasePipelineWorkflow knows and how it keeps its status: fields, the audit trail, the UI line."""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.workflow import ChildWorkflowHandle

with workflow.unsafe.imports_passed_through():
    from skyline.pipeline import PipelineSpec, PipelineState, PipelineStatus, StageStatus
    from skyline.rollout import ControlRequest, HistoryEntry
    from workflows import indexing


class PipelineBook:
    """Set in ReleasePipelineWorkflow.__init__."""

    _spec: PipelineSpec
    _status: PipelineStatus
    _paused: bool
    _rollback: ControlRequest | None
    _rejected: ControlRequest | None
    _skip_soak: bool
    _child: ChildWorkflowHandle[Any, Any] | None

    def _stage(self) -> StageStatus | None:
        index = self._status.stage
        return self._status.stages[index] if 0 <= index < len(self._status.stages) else None

    def _details(self) -> None:
        """The line the Temporal UI shows for this pipeline: every stage and its state."""
        stages = " → ".join(f"{s.name}: {s.state}" for s in self._status.stages)
        waiting = self._stage()
        workflow.set_current_details(
            f"**{self._spec.unit_key}** pipeline · state **{self._status.state}**\n\n{stages}"
            + (f"\n\nwaiting for {waiting.waiting_for}" if waiting and waiting.waiting_for else "")
            + (f"\n\n{self._status.reason}" if self._status.reason else "")
        )

    def _set_state(self, state: PipelineState) -> None:
        self._status.state = state
        self._status.updated_at = workflow.now()
        self._details()
        indexing.index_state(state)

    def _record(self, action: str, actor: str, reason: str, revision: int | None = None) -> None:
        self._status.history.append(
            HistoryEntry(
                at=workflow.now(),
                action=action,
                actor=actor,
                reason=reason,
                state=self._status.state,
                step=self._status.stage,
                weight=0,
                revision=revision,
            )
        )
        self._status.updated_at = workflow.now()
        self._details()

    def _finish(self, state: PipelineState, reason: str) -> PipelineStatus:
        for stage in self._status.stages:
            if stage.state == "pending":
                stage.state = "skipped"
        self._status.reason = reason
        self._status.paused_reason = None
        self._set_state(state)
        self._record(state, "skyline", reason)
        return self._status
