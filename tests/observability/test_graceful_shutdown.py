"""SIGTERM while an activity runs: the worker stops polling, lets it finish, then exits 0.

The private worker's Prometheus is a gate that holds the first analysis query.
The worker gets SIGTERM while the analysis activity waits on it; the gate
lets the query through later; the activity must complete on its first attempt
(an activity cancelled by the shutdown would fail and only complete on a
retry, on some other worker) and the worker must exit cleanly afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from skyline.settings import Settings
from stack.embedded import EmbeddedStack
from stack.processes import wait_until
from tests.observability.support import PrometheusGate, WorkerProcess, rollout_spec, start_rollout
from tests.support.rum import RumTarget
from tests.support.scenario import create_apartment, make_bundle

pytestmark = pytest.mark.asyncio(loop_scope="session")

HOLD_SECONDS = 2.0


@pytest.fixture()
def gate(settings: Settings) -> Iterator[PrometheusGate]:
    g = PrometheusGate(settings.prometheus_url)
    yield g
    g.close()


async def wait_event(event: threading.Event, timeout: float) -> bool:
    """Wait for a threading.Event without blocking the event loop."""
    return await asyncio.to_thread(event.wait, timeout)


async def test_sigterm_lets_the_running_activity_finish(
    stack: EmbeddedStack,
    temporal: Client,
    rum: RumTarget,
    settings: Settings,
    gate: PrometheusGate,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    worker = WorkerProcess(
        stack,
        tmp_path_factory.mktemp("graceful"),
        {"SKYLINE_PROMETHEUS_URL": gate.url, "SKYLINE_WORKER_GRACEFUL_SHUTDOWN_SECONDS": "30"},
    )
    await worker.start(temporal)
    handle = None
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.ports.api}", timeout=60) as api:
            apartment = await create_apartment(api)
        bundle = make_bundle(tmp_path_factory.mktemp("bundle"), "1.1.0")
        gate.hold_next()
        with rum.traffic(apartment, "header", "header", "1.1.0"):
            handle = await start_rollout(temporal, worker, rollout_spec(apartment, bundle, "1.1.0"))
            assert await wait_event(gate.held, 60), (
                f"no analysis query reached Prometheus: {worker.process.tail()}"
            )

            pid = worker.process.pid
            assert pid is not None
            os.kill(pid, signal.SIGTERM)
            # The worker must wait for the activity instead of exiting or cancelling it.
            deadline = time.monotonic() + HOLD_SECONDS
            while time.monotonic() < deadline:
                assert worker.process.alive(), (
                    f"worker exited with the activity still running: {worker.process.tail()}"
                )
                await asyncio.sleep(0.1)
            gate.release.set()

            await asyncio.to_thread(wait_until, lambda: not worker.process.alive(), 30, "worker exit")
        assert worker.process.returncode == 0, worker.process.tail()

        events = (await handle.fetch_history()).events
        scheduled = [e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
        analysis = [
            e
            for e in scheduled
            if e.activity_task_scheduled_event_attributes.activity_type.name == "gather_figures"
        ]
        assert analysis, "the rollout never scheduled an analysis"
        held = analysis[0].event_id
        started = [
            e
            for e in events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
            and e.activity_task_started_event_attributes.scheduled_event_id == held
        ]
        completed = [
            e
            for e in events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
            and e.activity_task_completed_event_attributes.scheduled_event_id == held
        ]
        assert completed, "the analysis running at SIGTERM never completed"
        assert started[0].activity_task_started_event_attributes.attempt == 1
        messages = [line["message"] for line in worker.log_lines()]
        assert any(m.startswith("stopping: no new tasks") for m in messages)
        assert messages[-1] == "worker stopped"
    finally:
        gate.release.set()
        worker.stop()
        if handle is not None:
            with contextlib.suppress(Exception):
                await handle.terminate("test cleanup")
