"""Workflow histories the tests write, for the replay suite (tests/workflows/histories/).

Every scenario that gives a workflow a new shape (controls by update, a
blue-green switch, an A/B decision, a fleet with children) saves its history
to test-artifacts/histories/; copied beside the replay test, it keeps the
workflow code honest across upgrades of Skyline itself.
"""

from __future__ import annotations

import asyncio
import time

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory

from tests.conftest import ARTIFACTS


async def save_history(temporal: Client, workflow_id: str, name: str, timeout: float = 30) -> WorkflowHistory:
    """The closed workflow's whole history, written as `<name>.json`."""
    handle = temporal.get_workflow_handle(workflow_id)
    deadline = time.monotonic() + timeout
    # The status shows the end a moment before the workflow's last task completes.
    while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        assert time.monotonic() < deadline, f"{workflow_id} is still running"
        await asyncio.sleep(0.1)
    history = await handle.fetch_history()
    saved = ARTIFACTS / "histories" / f"{name}.json"
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(history.to_json())
    return history
