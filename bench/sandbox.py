"""`python -m bench --only sandbox`: the worker's workflow runner against temporalio's own.

Offline (no stack). Each round replays every saved history of the replay
suite (tests/workflows/histories) with temporalio's SandboxedWorkflowRunner,
then with the worker's CompiledSandboxRunner (worker/sandbox.py: the same
sandbox, its entry code compiled once), one after the other so they share the
machine's load. A replay is what a worker does for a workflow it has not
cached, and every activation and payload on the way enters the sandbox, so the
CPU per round is the workflow-side cost the runner changes. The ratio is the
worker runner's CPU over the SDK runner's in the same round.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from bench.report import summary, table, write
from worker.main import WORKFLOWS
from worker.sandbox import CompiledSandboxRunner

HISTORIES = Path(__file__).resolve().parent.parent / "tests" / "workflows" / "histories"
ROUNDS = 5


async def _replay_all(runner: WorkflowRunner, histories: list[WorkflowHistory]) -> float:
    """CPU seconds of this process to replay every history once (each must replay cleanly)."""
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter, workflow_runner=runner)
    started = time.process_time()
    for history in histories:
        await replayer.replay_workflow(history, raise_on_replay_failure=True)
    return time.process_time() - started


def saved_histories() -> list[WorkflowHistory]:
    """The replay suite's saved histories (tests/workflows/test_replay.py replays the same files)."""
    return [WorkflowHistory.from_json(p.stem, p.read_text()) for p in sorted(HISTORIES.glob("*.json"))]


async def _measure(histories: list[WorkflowHistory], rounds: int) -> dict[str, list[float]]:
    runners: dict[str, WorkflowRunner] = {
        "temporalio SandboxedWorkflowRunner": SandboxedWorkflowRunner(),
        "worker CompiledSandboxRunner": CompiledSandboxRunner(),
    }
    for runner in runners.values():  # imports and first compiles out of the figures
        await _replay_all(runner, histories[:3])
    cpu: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            cpu[name].append(await _replay_all(runner, histories))
    return cpu


def main(rounds: int = ROUNDS) -> dict[str, object]:
    histories = saved_histories()
    cpu = asyncio.run(_measure(histories, rounds))
    sdk, ours = cpu.values()
    ratios = [b / a for a, b in zip(sdk, ours, strict=True)]
    rows = [[name, f"{summary(v)['p50']:.2f}", f"{min(v):.2f}", f"{max(v):.2f}"] for name, v in cpu.items()]
    text = table(
        f"Workflow runner: CPU s to replay the {len(histories)} saved histories, {rounds} interleaved rounds",
        ["runner", "CPU p50", "min", "max"],
        rows,
        notes=[
            f"worker runner / SDK runner, per round: p50 {summary(ratios)['p50']:.3f} "
            f"(min {min(ratios):.3f}, max {max(ratios):.3f})."
        ],
    )
    results: dict[str, object] = {"cpu_seconds": cpu, "ratio": summary(ratios), "ratios": ratios}
    write("sandbox", {"rounds": rounds}, results, text)
    return results


if __name__ == "__main__":
    main()
