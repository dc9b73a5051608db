"""The names the API uses for workflows (skyline/contracts.py) are the ones the worker registers."""

from __future__ import annotations

from temporalio.workflow import _Definition

from skyline import contracts
from skyline.controls import CONTROLS
from workflows.fleet import FleetRolloutWorkflow
from workflows.promotion import PromotionWorkflow
from workflows.rollout import RolloutWorkflow
from workflows.undo import ManifestUndoWorkflow


def test_workflow_type_names() -> None:
    assert _Definition.must_from_class(RolloutWorkflow).name == contracts.ROLLOUT_WORKFLOW
    assert _Definition.must_from_class(FleetRolloutWorkflow).name == contracts.FLEET_WORKFLOW
    assert _Definition.must_from_class(ManifestUndoWorkflow).name == contracts.UNDO_WORKFLOW
    assert _Definition.must_from_class(PromotionWorkflow).name == contracts.PROMOTION_WORKFLOW


def test_both_controlled_workflows_answer_the_status_query_and_every_control() -> None:
    for cls in (RolloutWorkflow, FleetRolloutWorkflow):
        definition = _Definition.must_from_class(cls)
        assert contracts.STATUS_QUERY in definition.queries
        assert set(CONTROLS) <= set(definition.updates)
        assert {f"{c}_signal" for c in CONTROLS} <= set(definition.signals)


def test_the_pipeline_answers_its_name_the_status_query_and_every_pipeline_control() -> None:
    from skyline.controls import PIPELINE_CONTROLS
    from workflows.pipeline import ReleasePipelineWorkflow

    definition = _Definition.must_from_class(ReleasePipelineWorkflow)
    assert definition.name == contracts.PIPELINE_WORKFLOW
    assert contracts.STATUS_QUERY in definition.queries
    assert set(PIPELINE_CONTROLS) <= set(definition.updates)
    assert {f"{c}_signal" for c in CONTROLS} | {"reject_signal"} <= set(definition.signals)
