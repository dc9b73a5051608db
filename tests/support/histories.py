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


async def what_could_move(temporal: Client, workflow_id: str, timeout: float = 30) -> list[str]:
    """What could still move a running workflow on its own: its pending timers and activities.

    Waits (bounded) until the workflow has no workflow task and no activity
    pending (an activity already running when the workflow paused, e.g. the
    edge sync of the weight just written, finishes on its own), so the history
    read is the settled one. An empty list means nothing happens until someone
    acts: the check that replaces watching a paused rollout for a while. An
    activity still pending at `timeout` is returned (a workflow that keeps
    scheduling work never settles).
    """
    handle = temporal.get_workflow_handle(workflow_id)
    deadline = time.monotonic() + timeout
    while True:
        described = (await handle.describe()).raw_description
        busy = described.HasField("pending_workflow_task") or len(described.pending_activities) > 0
        if not busy or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert not described.HasField("pending_workflow_task"), f"{workflow_id} never settled"
    started: dict[str, float] = {}
    ended: set[str] = set()
    async for event in handle.fetch_history_events():
        if event.HasField("timer_started_event_attributes"):
            attrs = event.timer_started_event_attributes
            started[attrs.timer_id] = attrs.start_to_fire_timeout.ToTimedelta().total_seconds()
        elif event.HasField("timer_fired_event_attributes"):
            ended.add(event.timer_fired_event_attributes.timer_id)
        elif event.HasField("timer_canceled_event_attributes"):
            ended.add(event.timer_canceled_event_attributes.timer_id)
    pending = [f"timer {t} ({seconds:g}s)" for t, seconds in started.items() if t not in ended]
    pending += [f"activity {a.activity_type.name}" for a in described.pending_activities]
    return pending
