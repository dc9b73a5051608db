"""A private `python -m worker` on its own task queue, and a Prometheus the test can stall or break.

The session stack's worker serves the session task queue; these tests start
their own worker process (same code, same command as production) on a
private queue, with its own settings (secrets, metrics port, Prometheus URL),
and start rollouts on that queue directly through Temporal.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowHandle

from skyline.rollout import RolloutInput, RolloutSpec, RolloutStatus, rollout_id_for
from skyline.settings import Settings
from stack.embedded import EmbeddedStack
from stack.processes import ManagedProcess, free_port
from tests.support.scenario import strategy
from workflows.rollout import RolloutWorkflow

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TERMINAL = {"succeeded", "rolled_back", "failed"}


class PrometheusGate:
    """Forwards to the real Prometheus; can answer 503 a number of times or hold one request."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.requests = 0
        self._fail = 0
        self._hold_next = False
        self.held = threading.Event()  # a request is being held
        self.release = threading.Event()
        self._lock = threading.Lock()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gate._serve(self)

            do_POST = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def fail_next(self, count: int) -> None:
        with self._lock:
            self._fail = count

    def hold_next(self) -> None:
        with self._lock:
            self._hold_next = True

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests += 1
            fail = self._fail > 0
            self._fail -= 1 if fail else 0
            hold = self._hold_next
            self._hold_next = False
        if fail:
            self._answer(handler, 503, b'{"status":"error","errorType":"unavailable","error":"gate closed"}')
            return
        if hold:
            self.held.set()
            self.release.wait(timeout=60)
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else None
        headers = {k: v for k, v in handler.headers.items() if k.lower() == "content-type"}
        upstream = httpx.request(
            handler.command, f"{self.upstream}{handler.path}", content=body, headers=headers, timeout=30
        )
        self._answer(handler, upstream.status_code, upstream.content)

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class WorkerProcess:
    """`python -m worker` with the stack's environment plus `overrides`, on a private task queue."""

    def __init__(self, stack: EmbeddedStack, log_dir: Path, overrides: Mapping[str, str]) -> None:
        self.task_queue = f"skyline-test-{uuid.uuid4().hex[:8]}"
        self.metrics_address = f"127.0.0.1:{free_port()}"
        env = {
            **os.environ,
            **stack.env(),
            "PYTHONUNBUFFERED": "1",
            "SKYLINE_TASK_QUEUE": self.task_queue,
            "SKYLINE_WORKER_METRICS_ADDRESS": self.metrics_address,
            "SKYLINE_LOG_FORMAT": "json",
            **overrides,
        }
        self.env = env
        self.log_path = log_dir / f"worker-{self.task_queue}.log"
        self.process = ManagedProcess(
            "worker", [sys.executable, "-m", "worker"], self.log_path, env, PROJECT_ROOT
        )

    async def start(self, client: Client, timeout: float = 30) -> None:
        self.process.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.process.alive():
                raise AssertionError(f"worker exited: {self.process.tail()}")
            if await pollers(client, self.task_queue) > 0:
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"worker never polled {self.task_queue}: {self.process.tail()}")

    def stop(self) -> None:
        self.process.stop(timeout=30)

    def log_lines(self) -> list[dict[str, Any]]:
        """Every log line, parsed: each must be one JSON object."""
        text = self.log_path.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def metrics(self) -> str:
        return httpx.get(f"http://{self.metrics_address}/metrics", timeout=5).text


async def pollers(client: Client, task_queue: str) -> int:
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return len(response.pollers)


def rollout_spec(apartment: str, bundle: Path, version: str, **strategy_overrides: Any) -> RolloutSpec:
    """The body a release manager POSTs to /rollouts, validated the way the API validates it."""
    return RolloutSpec.model_validate(
        {
            "apartment": apartment,
            "building": "header",
            "unit_id": "header",
            "version": version,
            "bundle": {"path": str(bundle)},
            "strategy": strategy(**strategy_overrides),
            "actor": "observability-tests",
            "reason": "private worker",
        }
    )


async def start_rollout(client: Client, worker: WorkerProcess, spec: RolloutSpec) -> WorkflowHandle[Any, Any]:
    rollout_id = rollout_id_for(spec.apartment, spec.building)
    return await client.start_workflow(
        RolloutWorkflow.run,
        RolloutInput(rollout_id=rollout_id, spec=spec),
        id=rollout_id,
        task_queue=worker.task_queue,
    )


async def wait_status(
    handle: WorkflowHandle[Any, Any], states: set[str], timeout: float = 90
) -> RolloutStatus:
    deadline = time.monotonic() + timeout
    status: RolloutStatus | None = None
    while time.monotonic() < deadline:
        status = await handle.query(RolloutWorkflow.status)
        if status.state in states:
            return status
        await asyncio.sleep(0.25)
    raise AssertionError(f"{handle.id} never reached {states}; last status: {status}")


def settings_of(env: Mapping[str, str]) -> Settings:
    return Settings.model_validate(
        {k.removeprefix("SKYLINE_").lower(): v for k, v in env.items() if k.startswith("SKYLINE_")}
    )
