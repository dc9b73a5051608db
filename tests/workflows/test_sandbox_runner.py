"""The worker's sandbox runner (worker/sandbox.py): compiled entry code, the same sandbox.

It subclasses a private class of temporalio's sandbox, so these tests are what
an SDK upgrade that changes it trips first (the replay suite and the whole
fast layer run on it as well).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.workflows.sandboxed import ReadsTheWallClock, WithinRules
from worker.sandbox import CompiledSandboxRunner, compiled

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_workflow_runs_in_the_sandbox_on_compiled_entry_code(skipping: WorkflowEnvironment) -> None:
    queue = f"sandbox-{uuid.uuid4().hex[:8]}"
    before = compiled.cache_info()
    async with Worker(
        skipping.client, task_queue=queue, workflows=[WithinRules], workflow_runner=CompiledSandboxRunner()
    ):
        # By name: with a method reference here, clean mypy runs inferred Never for the same
        # call on RolloutWorkflow.run in bench/ (module order inside temporalio's import cycle).
        got: str = await skipping.client.execute_workflow(
            "WithinRules", "skyline", id=f"within-{queue}", task_queue=queue, result_type=str
        )
    assert got.startswith("hello skyline at ")
    after = compiled.cache_info()
    # every entry into the instance after the first of each kind reused a compiled source
    assert after.hits > before.hits


async def test_the_sandbox_still_refuses_what_it_refused(skipping: WorkflowEnvironment) -> None:
    """The wall clock is off limits in workflow code: its workflow task fails, as under
    temporalio's own runner, instead of running with a nondeterministic value."""
    queue = f"sandbox-{uuid.uuid4().hex[:8]}"
    async with Worker(
        skipping.client,
        task_queue=queue,
        workflows=[ReadsTheWallClock],
        workflow_runner=CompiledSandboxRunner(),
        workflow_failure_exception_types=[Exception],  # fail the run, so the test need not time out
    ):
        handle = await skipping.client.start_workflow(
            "ReadsTheWallClock",
            id=f"clock-{queue}",
            task_queue=queue,
            execution_timeout=timedelta(minutes=1),
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    assert "RestrictedWorkflowAccessError" in repr(failed.value.cause) or "Cannot access" in str(
        failed.value.cause
    ), failed.value.cause
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
