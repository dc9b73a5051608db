"""EmbeddedStack: the default local stack as child processes of one launcher.

Components, in start order (each waits until healthy before the next starts):

    temporal    `temporal server start-dev` (SQLite db in the state dir, kept across runs)
    s3          moto's S3 API made durable (`python -m stack.s3server`: a journal of
                acknowledged writes in <state>/s3, replayed on start) + the bucket
    redis       redis-server (Debian): the evidence limits every API process shares
                (session caps, token budgets, distinct client networks); in memory only
    edge        varnishd with stack/varnish/skyline.vcl, backend = s3
    prometheus  prometheus with stack/prometheus/prometheus.yml
    worker      `python -m worker` (`workers` replicas: worker, worker-2, ...)
    collector   `python -m uvicorn collector.main:app`: the browser routes (`collectors`
                replicas: collector, collector-2, ...), scraped by Prometheus
    api         `python -m uvicorn api.main:app`, told the collector's URL (SKYLINE_COLLECTOR_URL:
                it answers old shells' browser paths with a 308 there) unless
                `api_redirects_browsers` is False

A component left out of `components` is assumed to run elsewhere on its port.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import sys
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import httpx
from botocore.exceptions import ClientError

from skyline.settings import S3_CREDENTIALS, Settings, generated_s3_keys
from stack.config import ALERT_RULES, render_prometheus, render_vcl, write_text
from stack.processes import (
    ManagedProcess,
    StackError,
    free_port,
    port_in_use,
    port_open,
    wait_until,
)
from stack.system_packages import find_binary

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

HOST = "127.0.0.1"
START_ORDER: tuple[str, ...] = ("temporal", "s3", "redis", "edge", "prometheus", "worker", "collector", "api")
ALL_COMPONENTS: frozenset[str] = frozenset(START_ORDER)
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# StackPorts fields each component listens on (checked before anything starts).
COMPONENT_PORTS: dict[str, tuple[str, ...]] = {
    "temporal": ("temporal", "temporal_ui", "temporal_http", "temporal_metrics"),
    "s3": ("s3",),
    "redis": ("redis",),
    "edge": ("edge", "edge_admin"),
    "prometheus": ("prometheus",),
    "worker": ("worker_metrics",),
    "collector": ("collector",),
    "api": ("api",),
}

T = TypeVar("T")


@dataclass
class StackPorts:
    temporal: int = 7233
    temporal_ui: int = 8233
    temporal_http: int = field(default_factory=lambda: _preferred_port(7243))
    temporal_metrics: int = field(default_factory=free_port)
    s3: int = 9000
    redis: int = 6379
    edge: int = 6081
    edge_admin: int = 6082
    prometheus: int = 9090
    api: int = 8000
    collector: int = 8001
    worker_metrics: int = field(default_factory=lambda: _preferred_port(9464))

    @classmethod
    def ephemeral(cls) -> StackPorts:
        """A free port for every field, so tests never collide with `make run`; distinct,
        since `free_port` never hands a port out twice."""
        return cls(**{f.name: free_port() for f in fields(cls)})


def _preferred_port(port: int) -> int:
    """`port` if it is free, else any free port (for the secondary Temporal HTTP API)."""
    return free_port() if port_in_use(port, HOST) else port


class EmbeddedStack:
    def __init__(
        self,
        state_dir: Path,
        ports: StackPorts | None = None,
        components: Iterable[str] = ALL_COMPONENTS,
        prometheus_scrape_interval: str = "5s",
        extra_scrape_targets: Sequence[str] = (),
        python: str = sys.executable,
        search_attributes: Mapping[str, str] | None = None,
        settings: Settings | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        progress: Callable[[str], None] | None = None,
        collectors: int = 1,
        workers: int = 1,
        api_redirects_browsers: bool = True,
    ) -> None:
        self.components = frozenset(components)
        if collectors < 1 or workers < 1:
            raise ValueError("a stack runs at least one collector and one worker")
        unknown = self.components - ALL_COMPONENTS
        if unknown:
            raise ValueError(f"unknown component(s) {sorted(unknown)}; known: {', '.join(START_ORDER)}")
        self.state_dir = Path(state_dir).absolute()
        self.ports = ports if ports is not None else StackPorts()
        self.prometheus_scrape_interval = prometheus_scrape_interval
        self.extra_scrape_targets = list(extra_scrape_targets)
        self.python = python
        self.search_attributes = dict(search_attributes or {})
        self.settings = settings if settings is not None else Settings()
        # The only place a deployer's `bundle.path` may point to (SKYLINE_BUNDLE_ROOT).
        self.bundle_root = Path(self.settings.bundle_root or self.state_dir / "bundles").absolute()
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._progress = progress or (lambda _message: None)
        self._processes: dict[str, ManagedProcess] = {}
        # Replicas past the first listen on free ports (the first on its StackPorts field).
        self._extra_collector_ports = [free_port() for _ in range(collectors - 1)]
        self._extra_worker_metrics_ports = [free_port() for _ in range(workers - 1)]
        self.api_redirects_browsers = api_redirects_browsers
        # apartment -> rollout ids Temporal knows but storage has no manifest for (see start()).
        self.storage_mismatch: dict[str, list[str]] = {}

    # ----------------------------------------------------------------- public

    def start(self) -> None:
        """Start every selected component in order; on any failure stop what was started."""
        if self._processes:
            raise StackError("stack already started")
        self.check_ports()
        for sub in ("logs", "config"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        self.bundle_root.mkdir(parents=True, exist_ok=True)
        starters = self._starters()
        try:
            for name in START_ORDER:
                if name in self.components:
                    self._progress(f"starting {name} ...")
                    starters[name]()
                    self._progress(f"{name} is ready")
        except BaseException:
            self.stop()
            raise
        if {"temporal", "s3"} <= self.components:
            self.check_storage()

    def check_storage(self) -> dict[str, list[str]]:
        """Warn (progress line) about rollouts Temporal has whose apartment storage lacks."""
        try:
            self.storage_mismatch = _run_async(self._storage_mismatch, timeout=30.0)
        except Exception as exc:  # a check that cannot run must not stop the stack
            self._progress(f"WARNING: could not compare storage with Temporal: {exc!r}")
            return {}
        for apartment, ids in self.storage_mismatch.items():
            shown = ", ".join(ids[:5]) + (f" (+{len(ids) - 5} more)" if len(ids) > 5 else "")
            self._progress(
                f"WARNING: storage and Temporal disagree: Temporal has {len(ids)} rollout(s) of "
                f"apartment {apartment!r} ({shown}) but storage has no manifest for it "
                f"(was {self.state_dir / 'storage'} wiped?); those rollouts cannot finish"
            )
        return self.storage_mismatch

    async def _storage_mismatch(self) -> dict[str, list[str]]:
        from temporalio.client import Client

        from adapters.consistency import rollouts_without_apartment

        client = await Client.connect(self.temporal_address, namespace=self.settings.temporal_namespace)
        return await rollouts_without_apartment(client, self._s3_client(), self.settings.s3_bucket)

    def restart(self, name: str) -> None:
        """Stop (if still running) and start one component again, waiting until it is healthy
        (a replica by its process name: `collector-2`, `worker-2`)."""
        starters = {**self._starters(), **self._replica_starters()}
        if name not in self._processes:
            raise StackError(f"{name}: not started by this stack")
        self._progress(f"restarting {name}")
        old = self._processes[name]
        old.stop(timeout=self.stop_timeout)
        starters[name]()
        self._progress(f"{name} is ready again")

    def _starters(self) -> dict[str, Callable[[], None]]:
        return {
            "temporal": self._start_temporal,
            "s3": self._start_s3,
            "redis": self._start_redis,
            "edge": self._start_edge,
            "prometheus": self._start_prometheus,
            "worker": self._start_workers,
            "collector": self._start_collectors,
            "api": self._start_api,
        }

    def _replica_starters(self) -> dict[str, Callable[[], None]]:
        """One starter per replica process name (the first replica has the component's name)."""
        found: dict[str, Callable[[], None]] = {}
        for index in range(len(self.worker_metrics_ports)):
            found[replica_name("worker", index)] = partial(self._start_worker, index)
        for index in range(len(self.collector_ports)):
            found[replica_name("collector", index)] = partial(self._start_collector, index)
        return found

    def stop(self) -> None:
        """Stop the processes this stack started, in reverse order. Idempotent."""
        while self._processes:
            name, process = self._processes.popitem()  # last started first
            self._progress(f"stopping {name} (pid {process.pid})")
            process.stop(timeout=self.stop_timeout)

    def __enter__(self) -> EmbeddedStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def check_ports(self) -> None:
        """Raise StackError naming the component and port if one is already taken."""
        for name in START_ORDER:
            if name not in self.components:
                continue
            for port_field in COMPONENT_PORTS[name]:
                port = int(getattr(self.ports, port_field))
                if port_in_use(port, HOST):
                    raise StackError(
                        f"{name}: port {port} ({port_field}) on {HOST} is already in use; "
                        "stop whatever listens there (another `make run`? a system "
                        "varnish/prometheus service?) or choose other ports"
                    )

    @property
    def processes(self) -> dict[str, ManagedProcess]:
        return dict(self._processes)

    def pids(self) -> dict[str, int]:
        return {n: p.pid for n, p in self._processes.items() if p.pid is not None}

    def dead(self) -> list[ManagedProcess]:
        """Started processes that have exited since."""
        return [p for p in self._processes.values() if not p.alive()]

    @property
    def temporal_address(self) -> str:
        return f"{HOST}:{self.ports.temporal}"

    @property
    def s3_endpoint_url(self) -> str:
        return f"http://{HOST}:{self.ports.s3}"

    @property
    def redis_url(self) -> str:
        return f"redis://{HOST}:{self.ports.redis}/0"

    @property
    def edge_url(self) -> str:
        return f"http://{HOST}:{self.ports.edge}"

    @property
    def prometheus_url(self) -> str:
        return f"http://{HOST}:{self.ports.prometheus}"

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.ports.api}"

    @property
    def collector_ports(self) -> list[int]:
        """The first replica's port is `ports.collector` (read now: callers may swap `ports`)."""
        return [self.ports.collector, *self._extra_collector_ports]

    @property
    def worker_metrics_ports(self) -> list[int]:
        return [self.ports.worker_metrics, *self._extra_worker_metrics_ports]

    @property
    def collector_urls(self) -> list[str]:
        """Every collector replica's URL; browsers of the embedded stack use the first."""
        return [f"http://{HOST}:{port}" for port in self.collector_ports]

    @property
    def collector_url(self) -> str:
        return self.collector_urls[0]

    @property
    def worker_metrics_address(self) -> str:
        return f"{HOST}:{self.ports.worker_metrics}"

    @property
    def collector_targets(self) -> list[str]:
        """Prometheus' targets of the collector job: every replica this stack starts."""
        if "collector" not in self.components:
            return []
        return [f"{HOST}:{port}" for port in self.collector_ports]

    @property
    def worker_metrics_addresses(self) -> list[str]:
        return [f"{HOST}:{port}" for port in self.worker_metrics_ports]

    def env(self) -> dict[str, str]:
        """SKYLINE_* variables for processes that use this stack."""
        s = self.settings
        return {
            "SKYLINE_TEMPORAL_ADDRESS": self.temporal_address,
            "SKYLINE_TEMPORAL_NAMESPACE": s.temporal_namespace,
            "SKYLINE_TASK_QUEUE": s.task_queue,
            "SKYLINE_S3_ENDPOINT_URL": self.s3_endpoint_url,
            "SKYLINE_S3_BUCKET": s.s3_bucket,
            "SKYLINE_S3_REGION": s.s3_region,
            **self.s3_credentials(),
            "SKYLINE_CDN_PROVIDER": "varnish",
            "SKYLINE_EDGE_URL": self.edge_url,
            "SKYLINE_VARNISH_PURGE_URL": self.edge_url,
            "SKYLINE_PROMETHEUS_URL": self.prometheus_url,
            "SKYLINE_REDIS_URL": self.redis_url,
            "SKYLINE_API_HOST": HOST,
            "SKYLINE_API_PORT": str(self.ports.api),
            "SKYLINE_STATE_DIR": str(self.state_dir),
            "SKYLINE_WORKER_METRICS_ADDRESS": self.worker_metrics_address,
            "SKYLINE_BEACON_KEY": self.beacon_key(),
            "SKYLINE_CONTROL_KEY": self.control_key(),
            "SKYLINE_BUNDLE_ROOT": str(self.bundle_root),
            # Webhooks and smoke URLs reach internal hosts only when named (none by default).
            "SKYLINE_WEBHOOK_ALLOWED_HOSTS": json.dumps(s.webhook_allowed_hosts),
            **(
                {"SKYLINE_COLLECTOR_URL": self.collector_url}
                if "collector" in self.components and self.api_redirects_browsers
                else {}
            ),
        }

    def beacon_key(self) -> str:
        """The configured beacon-token key, or one generated once into the state dir (0600)."""
        if self.settings.beacon_key is not None:
            return self.settings.beacon_key.get_secret_value()
        return self._state_key("beacon.key")

    def control_key(self) -> str:
        """The key of the API's control proofs (API and worker), or one generated into the state dir."""
        if self.settings.control_key is not None:
            return self.settings.control_key.get_secret_value()
        return self._state_key("control.key")

    def _state_key(self, name: str) -> str:
        path = self.state_dir / name
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.write(secrets.token_hex(32))
        return path.read_text(encoding="ascii").strip()

    def s3_credentials(self) -> dict[str, str]:
        """SKYLINE_AWS_* for the embedded S3 server: configured ones, else a key pair generated
        once into the state dir (0600), the only one the server accepts (stack/s3auth.py)."""
        s = self.settings
        if self._configured_keys():
            pair = (s.aws_access_key_id.get_secret_value(), s.aws_secret_access_key.get_secret_value())
        else:
            pair = generated_s3_keys(self.state_dir / S3_CREDENTIALS)
        return {"SKYLINE_AWS_ACCESS_KEY_ID": pair[0], "SKYLINE_AWS_SECRET_ACCESS_KEY": pair[1]}

    def endpoints(self) -> list[tuple[str, str]]:
        """(name, address) of every selected component, for printing."""
        c = self.components
        rows: list[tuple[str, str]] = []
        if "temporal" in c:
            rows.append(("Temporal gRPC", self.temporal_address))
            rows.append(("Temporal UI", f"http://{HOST}:{self.ports.temporal_ui}"))
        if "s3" in c:
            rows.append(("S3 API", self.s3_endpoint_url))
        if "redis" in c:
            rows.append(("Redis", self.redis_url))
        if "edge" in c:
            rows.append(("Edge (Varnish)", f"{self.edge_url}/{self.settings.s3_bucket}/"))
        if "prometheus" in c:
            rows.append(("Prometheus", self.prometheus_url))
        if "worker" in c:
            rows.append(("Worker", f"task queue {self.settings.task_queue}"))
        if "collector" in c:
            for index, url in enumerate(self.collector_urls):
                rows.append(("Collector" if index == 0 else f"Collector {index + 1}", f"{url}/healthz"))
        if "api" in c:
            rows.append(("API", f"{self.api_url}/docs"))
            # A minimal shell page per apartment (api/routes/shell.py), linked from this index.
            rows.append(("Shell pages", f"{self.api_url}/shells"))
        if "worker" in c or "api" in c:
            rows.append(("Bundle root", f"{self.bundle_root} (bundle.path must be under it)"))
        return rows

    # ------------------------------------------------------------- components

    def _launch(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> ManagedProcess:
        process = ManagedProcess(name, argv, self.state_dir / "logs" / f"{name}.log", env, cwd)
        # Known before it starts: an interrupt right after the fork still finds it in stop().
        # A restart keeps the component's place in the stop order.
        self._processes[name] = process
        process.start()
        return process

    def _binary(self, name: str) -> str:
        """A console script next to `python` (the venv's bin dir), else PATH/sbin."""
        beside = Path(self.python).parent / name  # not resolved: keep the venv's bin dir
        if beside.is_file() and os.access(beside, os.X_OK):
            return str(beside)
        found = shutil.which(name) or find_binary(name)
        if found is None:
            raise StackError(f"cannot find the {name!r} executable (next to {self.python} or on PATH)")
        return found

    def _start_temporal(self) -> None:
        p = self.ports
        argv = [
            self._binary("temporal"), "server", "start-dev",
            "--ip", HOST,
            "--port", str(p.temporal),
            "--ui-port", str(p.temporal_ui),
            "--http-port", str(p.temporal_http),
            "--metrics-port", str(p.temporal_metrics),
            "--db-filename", str(self.state_dir / "temporal.db"),
            # SQLite's default rollback journal fsyncs every commit: ~26 ms each here, one
            # writer, so the dev server topped out near 35 workflow updates/s and 1,000
            # rollouts queued behind it (docs/benchmarks.md). WAL with synchronous=normal
            # survives a killed server (only a power cut can lose the last commits).
            "--sqlite-pragma", "journal_mode=wal",
            "--sqlite-pragma", "synchronous=normal",
            "--log-level", "warn",
        ]  # fmt: skip
        if self.settings.temporal_namespace != "default":
            argv += ["--namespace", self.settings.temporal_namespace]
        for attr, kind in sorted(self.search_attributes.items()):
            argv += ["--search-attribute", f"{attr}={kind}"]
        process = self._launch("temporal", argv)
        ui = f"http://{HOST}:{p.temporal_ui}/"
        wait_until(
            lambda: port_open(p.temporal) and self._temporal_ready() and _http_ok(ui, any_status=True),
            self.startup_timeout, "temporal", process, interval=0.2,
        )  # fmt: skip

    def _temporal_ready(self) -> bool:
        from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
        from temporalio.client import Client

        namespace = self.settings.temporal_namespace

        async def check() -> bool:
            client = await Client.connect(self.temporal_address, namespace=namespace)
            await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace))
            return True

        return _run_async(check, timeout=5.0)

    @property
    def storage_dir(self) -> Path:
        """Where the S3 server keeps its journal (kept across runs, like temporal.db)."""
        return self.state_dir / "storage"

    def _start_s3(self) -> None:
        argv = [
            self.python, "-m", "stack.s3server",
            "--host", HOST, "--port", str(self.ports.s3),
            "--data-dir", str(self.storage_dir),
            "--credentials-file", str(self._credentials_file()),
            "--bucket", self.settings.s3_bucket,
        ]  # fmt: skip
        process = self._launch("s3", argv, self._python_env(), self._python_cwd())
        wait_until(
            lambda: _http_ok(f"{self.s3_endpoint_url}/", any_status=True),
            self.startup_timeout, "s3", process,
        )  # fmt: skip
        self._create_bucket()

    def _configured_keys(self) -> bool:
        """S3 keys set explicitly: use them, generate nothing. Otherwise every stack on this state
        dir (a rig starts one per component) shares the generated pair."""
        return bool({"aws_access_key_id", "aws_secret_access_key"} & self.settings.model_fields_set)

    def _credentials_file(self) -> Path:
        """The key pair the server accepts: the generated file, or the configured pair (0600)."""
        keys = self.s3_credentials()
        if not self._configured_keys():
            return self.state_dir / S3_CREDENTIALS
        path = self.state_dir / "config" / "s3-server-credentials.json"
        body = {
            "access_key_id": keys["SKYLINE_AWS_ACCESS_KEY_ID"],
            "secret_access_key": keys["SKYLINE_AWS_SECRET_ACCESS_KEY"],
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(body, out)
        return path

    def _s3_client(self) -> S3Client:
        keys = self.s3_credentials()
        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint_url,
            region_name=self.settings.s3_region,
            aws_access_key_id=keys["SKYLINE_AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=keys["SKYLINE_AWS_SECRET_ACCESS_KEY"],
        )

    def _create_bucket(self) -> None:
        s = self.settings
        client = self._s3_client()
        try:
            client.head_bucket(Bucket=s.s3_bucket)
            exists = True
        except ClientError:
            exists = False
        try:
            if exists:
                pass  # kept across restarts: do not journal a create again
            elif s.s3_region == "us-east-1":
                client.create_bucket(Bucket=s.s3_bucket)
            else:
                client.create_bucket(
                    Bucket=s.s3_bucket,
                    CreateBucketConfiguration={"LocationConstraint": s.s3_region},  # type: ignore[typeddict-item]
                )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise StackError(f"s3: cannot create bucket {s.s3_bucket!r}: {exc}") from exc
        # The edge fetches anonymously (no SigV4 in VCL): objects are public-read,
        # listing and writes still need credentials.
        policy = public_read_policy(s.s3_bucket)
        try:
            current = client.get_bucket_policy(Bucket=s.s3_bucket)["Policy"]
        except ClientError:
            current = ""
        if current != policy:  # kept across restarts: do not journal it again
            client.put_bucket_policy(Bucket=s.s3_bucket, Policy=policy)

    def _start_redis(self) -> None:
        binary = find_binary("redis-server")
        if binary is None:
            raise StackError("redis: redis-server not found; run `python -m stack check`")
        data = self.state_dir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "--bind", HOST,
            "--port", str(self.ports.redis),
            "--dir", str(data),
            # Counters of the last minutes and hours: nothing worth keeping across a restart.
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        process = self._launch("redis", argv)
        wait_until(
            lambda: redis_ready(self.ports.redis), self.startup_timeout, "redis", process, interval=0.1
        )

    def _start_edge(self) -> None:
        varnishd = find_binary("varnishd")
        if varnishd is None:
            raise StackError("edge: varnishd not found; run `python -m stack check`")
        vcl = write_text(
            self.state_dir / "config" / "skyline.vcl",
            render_vcl(HOST, self.ports.s3, self.settings.s3_bucket),
        )
        argv = [
            varnishd, "-F",
            "-n", str(self.state_dir / "varnish"),
            "-a", f"{HOST}:{self.ports.edge}",
            "-T", f"{HOST}:{self.ports.edge_admin}",
            "-f", str(vcl),
            "-s", "malloc,256m",
            # No privilege separation: as root the default "unix" jail would run
            # the compiler and cache as user varnish/vcache, which cannot read a
            # state dir under a private (0700) directory. Harmless as non-root.
            "-j", "none",
        ]  # fmt: skip
        process = self._launch("edge", argv)
        wait_until(
            lambda: _http_ok(f"{self.edge_url}/", any_status=True),
            self.startup_timeout, "edge", process,
        )  # fmt: skip

    def _start_prometheus(self) -> None:
        binary = find_binary("prometheus")
        if binary is None:
            raise StackError("prometheus: binary not found; run `python -m stack check`")
        config = write_text(
            self.state_dir / "config" / "prometheus.yml",
            render_prometheus(
                api_target=f"{HOST}:{self.ports.api}",
                scrape_interval=self.prometheus_scrape_interval,
                extra_targets=self.extra_scrape_targets,
                worker_targets=self.worker_metrics_addresses if "worker" in self.components else [],
                collector_targets=(
                    [f"{HOST}:{port}" for port in self.collector_ports]
                    if "collector" in self.components
                    else []
                ),
                rule_files=[str(ALERT_RULES)] if ALERT_RULES.is_file() else [],
            ),
        )
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.state_dir / 'prometheus'}",
            f"--web.listen-address={HOST}:{self.ports.prometheus}",
            "--web.enable-lifecycle",
        ]
        process = self._launch("prometheus", argv)
        wait_until(
            lambda: _http_ok(f"{self.prometheus_url}/-/ready"),
            self.startup_timeout, "prometheus", process,
        )  # fmt: skip

    def _python_env(self) -> dict[str, str]:
        return {**os.environ, **self.env(), "PYTHONUNBUFFERED": "1"}

    def _python_cwd(self) -> Path | None:
        return PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").is_file() else None

    def _start_workers(self) -> None:
        for index in range(len(self.worker_metrics_ports)):
            self._start_worker(index)

    def _start_worker(self, index: int = 0) -> None:
        name = replica_name("worker", index)
        env = {
            **self._python_env(),
            "SKYLINE_WORKER_METRICS_ADDRESS": f"{HOST}:{self.worker_metrics_ports[index]}",
        }
        process = self._launch(name, [self.python, "-m", "worker"], env, self._python_cwd())
        if index == 0:
            wait_until(self._worker_polling, self.startup_timeout, name, process, interval=0.25)
        else:  # the task queue has pollers already: this replica is up once it serves metrics
            port = self.worker_metrics_ports[index]
            wait_until(lambda: _http_ok(f"http://{HOST}:{port}/metrics"), self.startup_timeout, name, process)

    def _start_collectors(self) -> None:
        for index in range(len(self.collector_ports)):
            self._start_collector(index)

    def _start_collector(self, index: int = 0) -> None:
        name = replica_name("collector", index)
        port = self.collector_ports[index]
        argv = [
            self.python, "-m", "uvicorn", "collector.main:app",
            "--host", HOST, "--port", str(port),
            "--no-proxy-headers",  # like the API: SKYLINE_TRUSTED_PROXIES decides
        ]  # fmt: skip
        process = self._launch(name, argv, self._python_env(), self._python_cwd())
        wait_until(lambda: _http_ok(f"http://{HOST}:{port}/healthz"), self.startup_timeout, name, process)

    def _worker_polling(self) -> bool:
        from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
        from temporalio.client import Client

        s = self.settings

        async def check() -> bool:
            client = await Client.connect(self.temporal_address, namespace=s.temporal_namespace)
            response = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=s.temporal_namespace,
                    task_queue=TaskQueue(name=s.task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
                    task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                )
            )
            return len(response.pollers) > 0

        return _run_async(check, timeout=5.0)

    def _start_api(self) -> None:
        argv = [
            self.python, "-m", "uvicorn", "api.main:app",
            "--host", HOST, "--port", str(self.ports.api),
            # uvicorn would believe X-Forwarded-For from loopback; the API decides whom to
            # trust itself (SKYLINE_TRUSTED_PROXIES, skyline/networks.py), here nobody.
            "--no-proxy-headers",
        ]  # fmt: skip
        process = self._launch("api", argv, self._python_env(), self._python_cwd())
        wait_until(
            lambda: _http_ok(f"{self.api_url}/healthz"),
            self.startup_timeout, "api", process,
        )  # fmt: skip


def replica_name(component: str, index: int) -> str:
    """`collector`, `collector-2`, ...: the first replica keeps the component's name."""
    return component if index == 0 else f"{component}-{index + 1}"


def public_read_policy(bucket: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "SkylineEdgePublicRead",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": ["s3:GetObject"],
                    "Resource": [f"arn:aws:s3:::{bucket}/*"],
                }
            ],
        }
    )


def redis_ready(port: int, host: str = HOST) -> bool:
    """PONG to a PING (RESP, no client library needed for the health check)."""
    import socket

    with socket.create_connection((host, port), timeout=2.0) as conn:
        conn.sendall(b"PING\r\n")
        return conn.recv(64).startswith(b"+PONG")


def _http_ok(url: str, any_status: bool = False) -> bool:
    """200 (or, with any_status, any answer below 500) from a GET of `url`."""
    response = httpx.get(url, timeout=2.0)
    return response.status_code < 500 if any_status else response.status_code == 200


def _run_async(factory: Callable[[], Coroutine[Any, Any, T]], timeout: float) -> T:
    """Run a coroutine to completion in a fresh thread and event loop.

    Keeps health checks independent of any loop the caller may be running
    (pytest-asyncio, the API) and of its event loop policy.
    """

    async def bounded() -> T:
        return await asyncio.wait_for(factory(), timeout)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stack-health") as pool:
        return pool.submit(asyncio.run, bounded()).result()
