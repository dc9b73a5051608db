"""Seed 002's real timings (5/25/50/100 %, 10-minute bakes, 1-minute analyses) in seconds.

Temporal's time-skipping test server jumps over the bake timers, while every
activity still runs for real against the test stack's S3, Varnish and
Prometheus. 40 minutes of rollout, judged on real PromQL.
"""

from __future__ import annotations

import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from skyline.rollout import RolloutInput, RolloutSpec, rollout_id_for
from skyline.settings import Settings
from tests.support.rum import RumTarget
from tests.support.scenario import create_apartment, make_bundle
from worker.main import build_worker
from workflows.rollout import RolloutWorkflow

TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize("sandboxed", [True, False], ids=["sandboxed", "unsandboxed"])
async def test_default_canary_with_ten_minute_bakes(
    api: httpx.AsyncClient, rum: RumTarget, settings: Settings, tmp_path: Path, sandboxed: bool
) -> None:
    """Also with SKYLINE_WORKER_SANDBOX=false: the worker's own build, real activities."""
    apartment = await create_apartment(api)
    spec = RolloutSpec.model_validate(
        {
            "apartment": apartment,
            "building": "header",
            "unit_id": "header",
            "version": "3.0.0",
            "bundle": {"path": str(make_bundle(tmp_path / "b", "3.0.0"))},
            # Only the window shrinks: the test's traffic is seconds old, not minutes.
            "strategy": {
                "analysis_window_seconds": 10,
                "min_requests": 5,
                "first_unit_needs_confirmation": False,
            },
        }
    )
    task_queue = f"time-skipping-{uuid.uuid4().hex[:8]}"
    local = settings.model_copy(update={"task_queue": task_queue, "worker_sandbox": sandboxed})
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=str(TEST_SERVER)
    ) as env:
        with (
            ThreadPoolExecutor(max_workers=local.worker_activity_threads) as pool,
            rum.traffic(apartment, "header", "header", "3.0.0"),
        ):
            rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "3.0.0")
            async with build_worker(env.client, local, pool):
                rollout_id = rollout_id_for(apartment, "header")
                status = await env.client.execute_workflow(
                    RolloutWorkflow.run,
                    RolloutInput(rollout_id=rollout_id, spec=spec),
                    id=rollout_id,
                    task_queue=task_queue,
                )
    assert status.state == "succeeded", (status.paused_reason, status.reason)
    assert status.steps == [5, 25, 50, 100]
    elapsed = (status.updated_at - status.started_at).total_seconds()
    assert elapsed >= 4 * 600  # four full bakes of workflow time
    per_step = {w: sum(1 for a in status.analyses if a.weight == w) for w in status.steps}
    assert all(count >= 10 for count in per_step.values()), per_step  # one analysis a minute
    assert all(a.verdict == "pass" for a in status.analyses)
