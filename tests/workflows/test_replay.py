"""Saved workflow histories must replay against the current workflow code.

Rollouts run for hours while Skyline itself is upgraded; a workflow change
that would break a running rollout fails here. Refresh a history by copying
test-artifacts/histories/<name>.json after `make test`; for an intentional
incompatible change, guard the new code with `workflow.patched(...)` first.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from worker.main import WORKFLOWS
from worker.sandbox import CompiledSandboxRunner

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "history",
    [WorkflowHistory.from_json(p.stem, p.read_text()) for p in HISTORIES],
    ids=[p.stem for p in HISTORIES],
)
@pytest.mark.parametrize("sandboxed", [True, False], ids=["sandboxed", "unsandboxed"])
async def test_saved_history_replays(history: WorkflowHistory, sandboxed: bool) -> None:
    """Both ways a worker may run workflow code (SKYLINE_WORKER_SANDBOX): the same commands."""
    runner = CompiledSandboxRunner() if sandboxed else UnsandboxedWorkflowRunner()
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter, workflow_runner=runner)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


def test_histories_are_present() -> None:
    # one per workflow shape: strategies, controls by update and by signal, schedules, fleets
    assert {p.stem for p in HISTORIES} >= {
        "canary_promoted",
        "canary_rolled_back",
        "canary_steered_by_updates",
        "canary_signalled_from_the_ui",
        "canary_promoted_by_schedule",
        "blue_green_switched_and_back",
        "ab_test_decided",
        "fleet_controlled_and_rolled_back",
    }
    # the same shapes after the sequential judge and the split workflows (kept beside the old ones:
    # both are rollouts in flight during an upgrade), and the shapes the controls issue added
    assert {p.stem for p in HISTORIES} >= {
        "v2_canary_promoted",
        "v2_canary_rolled_back",
        "v2_canary_steered_by_updates",
        "v2_canary_signalled_from_the_ui",
        "v2_canary_promoted_by_schedule",
        "v2_blue_green_switched_and_back",
        "v2_ab_test_decided",
        "v2_fleet_controlled_and_rolled_back",
        "rollback_during_the_promotion_write",
        "second_rollback_refused",
        "rollback_as_two_local_activities",
        "first_unit_confirmed",
        "thin_step_held_and_resumed",
        "fleet_kept_a_hotfix",
        "fleet_promote_deferred",
        "pipeline_staging_to_production",
        "pipeline_paused_and_promoted",
        "v2_pipeline_staging_to_production",  # the soak checks the unit still holds (patched)
    }
    # each write as one activity with its purge-and-verify ("write-and-serve"), kept beside
    # the same shapes with two activities per write
    assert {p.stem for p in HISTORIES} >= {
        "write_and_serve_canary_promoted",
        "write_and_serve_full_promote_during_a_weight_write",
        "write_and_serve_thin_step_held_and_resumed",
        "write_and_serve_rollback_during_the_promotion_write",
    }
