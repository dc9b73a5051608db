"""An isolated embedded stack whose servers can be killed, stopped and restarted.

Each component is its own `EmbeddedStack` (one component each, same state
dir and ports), so one can be stopped and started again without touching the
others: Temporal comes back on the same SQLite file, Prometheus on the same
TSDB. The worker is a `ManagedProcess` started exactly as the stack starts it
(`python -m worker`, same environment), so it can be SIGKILLed and replaced.

With `proxy_s3`, the S3 server listens on a private port and everything else
(worker, API, Varnish) reaches it through a `TcpProxy` on the stack's S3
port: taking the proxy down is an S3 outage that keeps the in-memory data.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from adapters.search_attributes import REGISTRATION
from bench.tcpproxy import TcpProxy
from skyline.settings import Settings
from stack.embedded import PROJECT_ROOT, START_ORDER, EmbeddedStack, StackPorts, replica_name
from stack.processes import ManagedProcess, StackError, free_port, wait_until

COMPONENTS = tuple(c for c in START_ORDER if c != "worker")  # the worker is managed here


class Rig:
    def __init__(
        self,
        state_dir: Path,
        scrape_targets: Sequence[str] = (),
        scrape_interval: str = "1s",
        proxy_s3: bool = False,
        worker_env: dict[str, str] | None = None,
        python: str = sys.executable,
        settings: Settings | None = None,
        workers: int = 1,
    ) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.ports = StackPorts.ephemeral()
        self.scrape_targets = list(scrape_targets)
        self.scrape_interval = scrape_interval
        self.proxy: TcpProxy | None = None
        self._s3_ports = self.ports
        if proxy_s3:
            self._s3_ports = dataclasses.replace(self.ports, s3=free_port())
        self.worker_env = dict(worker_env or {})
        self.python = python
        self.settings = settings if settings is not None else Settings()
        self._stacks: dict[str, EmbeddedStack] = {}
        self.worker: ManagedProcess | None = None
        self.workers = workers  # worker processes on the one task queue (--workers)
        self.extra_workers: list[ManagedProcess] = []
        self._worker_runs = 0

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Rig:
        try:
            for name in COMPONENTS:
                self.start_component(name)
                if name == "s3" and self._s3_ports is not self.ports:
                    self.proxy = TcpProxy(self.ports.s3, self._s3_ports.s3).start()
            self.start_worker()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything this rig started, worker first. Idempotent."""
        self.stop_worker()
        for name in reversed(COMPONENTS):
            if name == "s3" and self.proxy is not None:
                self.proxy.close()
                self.proxy = None
            self.stop_component(name)

    def __enter__(self) -> Rig:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---------------------------------------------------------------- components

    def _stack(self, name: str) -> EmbeddedStack:
        return EmbeddedStack(
            self.state_dir,
            self._s3_ports if name == "s3" else self.ports,
            {name},
            prometheus_scrape_interval=self.scrape_interval,
            extra_scrape_targets=self.scrape_targets,
            python=self.python,
            settings=self.settings,
            search_attributes=REGISTRATION,  # what the rollout workflow upserts
        )

    def start_component(self, name: str) -> None:
        if name not in COMPONENTS:
            raise ValueError(f"unknown component {name!r}; known: {', '.join(COMPONENTS)}")
        if name in self._stacks:
            raise StackError(f"{name} is already running")
        stack = self._stack(name)
        stack.start()
        self._stacks[name] = stack

    def stop_component(self, name: str) -> None:
        stack = self._stacks.pop(name, None)
        if stack is not None:
            stack.stop()

    def restart_component(self, name: str) -> None:
        self.stop_component(name)
        self.start_component(name)

    def running(self, name: str) -> bool:
        stack = self._stacks.get(name)
        return stack is not None and not stack.dead()

    def pid(self, name: str) -> int | None:
        if name in self.worker_names:
            running = [p for p in (self.worker, *self.extra_workers) if p is not None]
            process = dict(zip(self.worker_names, running, strict=False)).get(name)
            return process.pid if process is not None and process.alive() else None
        stack = self._stacks.get(name)
        return stack.pids().get(name) if stack is not None else None

    # ---------------------------------------------------------------- worker

    def env(self) -> dict[str, str]:
        """SKYLINE_* for processes of this rig (the API's and the worker's view)."""
        return self._stack("api").env()

    @property
    def worker_names(self) -> list[str]:
        """`worker`, then `worker-2`, ... as the embedded stack names replicas (pid() takes these)."""
        return [replica_name("worker", i) for i in range(self.workers)]

    def _launch_worker(self, timeout: float, env_extra: dict[str, str]) -> ManagedProcess:
        self._worker_runs += 1
        log = self.state_dir / "logs" / f"worker-{self._worker_runs}.log"
        env = {**os.environ, **self.env(), "PYTHONUNBUFFERED": "1", **self.worker_env, **env_extra}
        cwd = PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").is_file() else None
        process = ManagedProcess("worker", [self.python, "-m", "worker"], log, env, cwd)
        process.start()
        # The task queue's poller list outlives a killed worker, so readiness is
        # the worker's own log line, written once its pollers run.
        wait_until(lambda: "worker polling" in process.tail(200), timeout, "worker", process, interval=0.1)
        return process

    def start_worker(self, timeout: float = 60.0) -> ManagedProcess:
        """The worker, and the extra ones `workers` asks for (their metrics off: one port each)."""
        if self.worker is not None and self.worker.alive():
            raise StackError(f"worker already running (pid {self.worker.pid})")
        self.worker = self._launch_worker(timeout, {})
        no_metrics = {"SKYLINE_WORKER_METRICS_ADDRESS": ""}
        self.extra_workers = [self._launch_worker(timeout, no_metrics) for _ in range(self.workers - 1)]
        return self.worker

    def kill_worker(self) -> None:
        """SIGKILL: no graceful shutdown, in-flight activities are simply lost."""
        process = self.worker
        if process is not None and process.pid is not None and process.alive():
            os.kill(process.pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while process.alive() and time.monotonic() < deadline:
                time.sleep(0.01)
            process.stop(timeout=1)

    def stop_worker(self) -> None:
        for extra in self.extra_workers:
            extra.stop(timeout=10)
        self.extra_workers = []
        if self.worker is not None:
            self.worker.stop(timeout=10)

    def worker_peak_rss_bytes(self) -> int | None:
        """VmHWM (peak resident set) of the running worker process (the largest, with several)."""
        peaks = [peak_rss_bytes(pid) for name in self.worker_names if (pid := self.pid(name)) is not None]
        found = [p for p in peaks if p is not None]
        return max(found) if found else None

    # ---------------------------------------------------------------- clients

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def edge_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.edge}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.prometheus}"

    def client_settings(self) -> Settings:
        values = {k.removeprefix("SKYLINE_").lower(): v for k, v in self.env().items()}
        return Settings.model_validate(values)

    async def temporal(self) -> Client:
        s = self.settings
        return await Client.connect(
            f"127.0.0.1:{self.ports.temporal}",
            namespace=s.temporal_namespace,
            data_converter=pydantic_data_converter,
        )


def peak_rss_bytes(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None
