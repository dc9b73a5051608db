"""Saved rollout histories must replay against the current RolloutWorkflow.

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
from temporalio.worker import Replayer

from workflows.rollout import RolloutWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "history",
    [WorkflowHistory.from_json(p.stem, p.read_text()) for p in HISTORIES],
    ids=[p.stem for p in HISTORIES],
)
async def test_saved_history_replays(history: WorkflowHistory) -> None:
    replayer = Replayer(workflows=[RolloutWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


def test_histories_are_present() -> None:
    assert {p.stem for p in HISTORIES} >= {"canary_promoted", "canary_rolled_back"}
