"""The fast workflow layer: Temporal's time-skipping test server, started once per session."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest_asyncio
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from skyline import control_proof
from skyline.rollout import ControlRequest
from tests.workflows.world import World
from worker.main import WORKFLOWS
from worker.sandbox import CompiledSandboxRunner

TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"
# The fast layer's SKYLINE_CONTROL_KEY: its workers check proofs with it, `proved` signs with it.
CONTROL_KEY = b"fast-layer-control-key"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def skipping() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=str(TEST_SERVER)
    ) as env:
        yield env


@asynccontextmanager
async def running(env: WorkflowEnvironment, world: World) -> AsyncIterator[str]:
    """A worker with the world's stand-in activities on a task queue of its own."""
    queue = f"fast-{uuid.uuid4().hex[:8]}"
    control_proof.hold([CONTROL_KEY])
    with ThreadPoolExecutor(max_workers=4) as pool:
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=WORKFLOWS,
            activities=world.activities(),
            activity_executor=pool,
            workflow_runner=CompiledSandboxRunner(),  # as the worker runs them
        ):
            yield queue


async def proved(
    env: WorkflowEnvironment, workflow_id: str, update: str, req: ControlRequest
) -> Any:  # SignedControl or SignedPromote, as the update takes it
    """`req` as the API sends it: with a proof of its actor (signed at the test server's skipped time)."""
    return control_proof.sign(CONTROL_KEY, workflow_id, update, req, now=await env.get_current_time())
