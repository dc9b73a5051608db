"""The worker's build (worker/main.py) carries its settings into the SDK's Worker.

Each of these is a sizing knob in docs/operations.md; a setting that stops reaching the
Worker would leave the documented figure silently untrue.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from skyline.settings import Settings
from tests.workflows.conftest import CONTROL_KEY
from worker.main import build_worker
from worker.sandbox import CompiledSandboxRunner


@pytest.mark.asyncio(loop_scope="session")
async def test_the_worker_is_built_with_its_settings(skipping: WorkflowEnvironment) -> None:
    settings = Settings(
        task_queue="build-check",
        control_key=SecretStr(CONTROL_KEY.decode()),
        worker_sticky_timeout_seconds=45,
        worker_max_cached_workflows=1234,
        worker_max_concurrent_workflow_tasks=7,
    )
    with ThreadPoolExecutor(max_workers=settings.worker_activity_threads) as pool:
        async with build_worker(skipping.client, settings, pool) as worker:  # started, then shut down
            config = worker.config()
    assert config.get("sticky_queue_schedule_to_start_timeout") == timedelta(seconds=45)
    assert config.get("max_cached_workflows") == 1234
    assert config.get("max_concurrent_workflow_tasks") == 7
    assert isinstance(config.get("workflow_runner"), CompiledSandboxRunner)


def test_the_sticky_timeout_is_refused_when_not_positive() -> None:
    with pytest.raises(ValueError, match="worker_sticky_timeout_seconds"):
        Settings(worker_sticky_timeout_seconds=0)
