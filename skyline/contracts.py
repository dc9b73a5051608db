"""The workflows as the API sees them: type, query and update names, and the small inputs and results.

The API starts, queries and controls workflows by these names, with typed
results, so its process never imports workflows/ (which import every
activity). tests/workflows/test_contracts.py checks each name against the
workflow definitions the worker registers.
"""

from __future__ import annotations

from pydantic import BaseModel

ROLLOUT_WORKFLOW = "RolloutWorkflow"
FLEET_WORKFLOW = "FleetRolloutWorkflow"
PIPELINE_WORKFLOW = "ReleasePipelineWorkflow"
UNDO_WORKFLOW = "ManifestUndoWorkflow"
PROMOTION_WORKFLOW = "PromotionWorkflow"

STATUS_QUERY = "status"  # RolloutWorkflow and FleetRolloutWorkflow
# Their updates are named for skyline.controls.CONTROLS (each also has a `<name>_signal` signal).


class UndoInput(BaseModel):
    apartment: str
    to_revision: int
    actor: str
    reason: str


class UndoResult(BaseModel):
    apartment: str
    revision: int
    restored_from: int


def undo_workflow_id(apartment: str) -> str:
    return f"undo.{apartment}"


class PromotionInput(BaseModel):
    rollout_id: str
    apartment: str
    actor: str = "schedule"
    cron: str | None = None  # kept for display: Temporal stores cron as calendar specs
    timezone: str | None = None
    # The API's word that it named `actor` (skyline/control_proof.py schedule_proof): without it,
    # the promotion is audited "actor unverified" (anyone on Temporal can start this workflow).
    actor_proof: str | None = None


class PromotionResult(BaseModel):
    promoted: bool
    reason: str
