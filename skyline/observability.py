"""What Skyline's processes tell operators: JSON logs and Prometheus metrics.

Logs: one JSON object per line on stderr. `rollout_id` is filled in wherever
it is known: from the context Temporal's workflow and activity loggers attach
(`temporal_workflow` / `temporal_activity`, whose workflow id *is* the rollout
id) or from `rollout_context()` in the API. Every configured secret value is
masked in every line, whatever code logged it.

Metrics, worker: recorded through Temporal's metric meter, so they leave the
worker on the same Prometheus endpoint as the SDK's own metrics
(`worker_runtime`), and counters bumped in workflow code are not counted again
when a workflow is replayed. Metrics, API: prometheus-client on `/metrics`.

The metric names below are what deploy/prometheus/alerts.yml and
deploy/grafana/dashboards/skyline.json query; tests/deploy checks they agree.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr
from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from skyline.settings import Settings

# ----------------------------------------------------------------- metric names

ROLLOUTS_STARTED = "skyline_rollouts_started"  # exported with _total
ROLLOUTS_FINISHED = "skyline_rollouts_finished"  # {outcome=succeeded|rolled_back|failed}
ROLLOUT_DURATION = "skyline_rollout_duration_seconds"  # {outcome}
STEP_DURATION = "skyline_rollout_step_duration_seconds"  # {weight}: traffic held at one weight
ANALYSIS_VERDICTS = "skyline_analysis_verdicts"  # {verdict}
ACTIVITY_FAILURES = "skyline_activity_failures"  # {activity_type, error_type}, per failed attempt
API_REQUESTS = "skyline_api_requests"  # {method, route, status}
API_LATENCY = "skyline_api_request_duration_seconds"  # {method, route}

# Exported names (counters gain `_total`), for the alert rules and the dashboard.
WORKER_METRICS: frozenset[str] = frozenset(
    {
        f"{ROLLOUTS_STARTED}_total",
        f"{ROLLOUTS_FINISHED}_total",
        ROLLOUT_DURATION,
        STEP_DURATION,
        f"{ANALYSIS_VERDICTS}_total",
        f"{ACTIVITY_FAILURES}_total",
    }
)
API_METRICS: frozenset[str] = frozenset({f"{API_REQUESTS}_total", API_LATENCY})

# Bakes last minutes to hours; the SDK's default buckets stop at 10 s.
_STEP_BUCKETS = [1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0]
_ROLLOUT_BUCKETS = [10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0]

# ----------------------------------------------------------------------- logs

_ROLLOUT_ID: ContextVar[str | None] = ContextVar("skyline_rollout_id", default=None)

# LogRecord attributes that are not "extra" fields.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime", "taskName"}
)
# Not worth a field: uvicorn's ANSI-coloured copy of the message.
_SKIPPED = _STANDARD | {"color_message"}
_MASK = "**********"


@contextmanager
def rollout_context(rollout_id: str | None) -> Iterator[None]:
    """Log lines emitted inside carry this rollout id (for code outside Temporal's loggers)."""
    token = _ROLLOUT_ID.set(rollout_id)
    try:
        yield
    finally:
        _ROLLOUT_ID.reset(token)


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, rollout_id, context, extras."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def _mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, _MASK)
        return text

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        temporal_workflow = getattr(record, "temporal_workflow", None)
        temporal_activity = getattr(record, "temporal_activity", None)
        rollout_id = _ROLLOUT_ID.get()
        if isinstance(temporal_workflow, dict):
            rollout_id = temporal_workflow.get("workflow_id", rollout_id)
            entry["run_id"] = temporal_workflow.get("run_id")
        if isinstance(temporal_activity, dict):
            rollout_id = temporal_activity.get("workflow_id", rollout_id)
            entry["run_id"] = temporal_activity.get("workflow_run_id")
            entry["activity"] = temporal_activity.get("activity_type")
            entry["attempt"] = temporal_activity.get("attempt")
        if rollout_id:
            entry["rollout_id"] = rollout_id
        for key, value in vars(record).items():
            if key not in _SKIPPED and key not in entry and not key.startswith("temporal_"):
                entry[key] = _jsonable(value)
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:
            entry["exception"] = record.exc_text
        line = json.dumps({k: v for k, v in entry.items() if v is not None}, default=str)
        return self._mask(line)


class _MaskingFormatter(logging.Formatter):
    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        self._json = JsonFormatter(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return self._json._mask(super().format(record))


# An access key id names a key, it does not authenticate (AWS logs it in
# CloudTrail); masking it would also mask the bucket in the embedded defaults.
_NOT_SECRET = frozenset({"aws_access_key_id"})
# Masking a value this short would garble ordinary words in every line.
MIN_MASKED_LENGTH = 8


def secret_values(settings: Settings) -> list[str]:
    """Every credential configured in `settings` (SecretStr fields), to be masked in logs."""
    values: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr) and name not in _NOT_SECRET:
            values.append(value.get_secret_value())
    return [v for v in values if len(v) >= MIN_MASKED_LENGTH]


# Loggers that install their own handlers (uvicorn) and would bypass the root's.
_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
_CHATTY_LOGGERS = ("httpx", "httpcore", "botocore", "urllib3")


def configure_logging(settings: Settings, stream: Any = None) -> logging.Handler:
    """Root logging for a Skyline process: JSON (or text) lines, secrets masked. Idempotent."""
    secrets = secret_values(settings)
    handler = logging.StreamHandler(stream or sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter(secrets))
        # The JSON line already carries the context as fields.
        activity.logger.activity_info_on_message = False
        workflow.logger.workflow_info_on_message = False
    else:
        handler.setFormatter(_MaskingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", secrets))
    handler.set_name("skyline")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "skyline"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for name in _SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        server_logger.handlers = []
        server_logger.propagate = True
    # One INFO line per HTTP request (edge reads, purges, Prometheus) drowns the rest.
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING)
    return handler


# ------------------------------------------------------------- worker metrics


def worker_runtime(bind_address: str) -> Runtime:
    """A Temporal runtime serving SDK and Skyline metrics at http://{bind_address}/metrics."""
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=bind_address,
                counters_total_suffix=True,
                durations_as_seconds=True,
                histogram_bucket_overrides={
                    STEP_DURATION: _STEP_BUCKETS,
                    ROLLOUT_DURATION: _ROLLOUT_BUCKETS,
                },
            ),
        )
    )


class RolloutTelemetry:
    """Metrics of one rollout, recorded from workflow code (deterministic, replay-safe).

    `workflow.metric_meter()` records nothing while a workflow is replayed and
    adds no command to its history, so these calls never affect determinism.
    """

    def __init__(self, apartment: str) -> None:
        self._apartment = apartment
        self._started: datetime | None = None
        self._step: tuple[float, datetime] | None = None

    def started(self) -> None:
        self._started = workflow.now()
        meter = workflow.metric_meter()
        meter.create_counter(ROLLOUTS_STARTED, "rollouts started").add(1, {"apartment": self._apartment})

    def step(self, weight: float) -> None:
        """A new weight is live: the previous one's time ends here."""
        self._close_step()
        self._step = (weight, workflow.now())

    def verdict(self, verdict: str) -> None:
        meter = workflow.metric_meter()
        meter.create_counter(ANALYSIS_VERDICTS, "canary analysis verdicts").add(1, {"verdict": verdict})

    def finished(self, outcome: str) -> None:
        self._close_step()
        meter = workflow.metric_meter()
        meter.create_counter(ROLLOUTS_FINISHED, "rollouts finished, by outcome").add(
            1, {"apartment": self._apartment, "outcome": outcome}
        )
        if self._started is not None:
            seconds = (workflow.now() - self._started).total_seconds()
            meter.create_histogram_float(ROLLOUT_DURATION, "rollout start to finish", "seconds").record(
                seconds, {"outcome": outcome}
            )

    def _close_step(self) -> None:
        if self._step is None:
            return
        weight, since = self._step
        self._step = None
        workflow.metric_meter().create_histogram_float(
            STEP_DURATION, "time traffic stayed at one weight", "seconds"
        ).record((workflow.now() - since).total_seconds(), {"weight": f"{weight:g}"})


class ActivityTelemetry(Interceptor):
    """Worker interceptor: counts failed activity attempts and logs each outcome with the rollout id."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityInbound(next)


def _error_type(err: BaseException) -> str:
    if isinstance(err, ApplicationError) and err.type:
        return err.type
    return type(err).__name__


class _ActivityInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        started = time.monotonic()
        try:
            result = await self.next.execute_activity(input)
        except BaseException as err:
            seconds = time.monotonic() - started
            if activity.is_cancelled() or isinstance(err, KeyboardInterrupt | SystemExit):
                activity.logger.info("activity cancelled after %.3f s", seconds)
                raise
            error_type = _error_type(err)
            activity.metric_meter().create_counter(
                ACTIVITY_FAILURES, "failed activity attempts (each retry counts)"
            ).add(1, {"error_type": error_type})
            activity.logger.warning(
                "activity failed after %.3f s: %s: %s",
                seconds,
                error_type,
                err,
                extra={"error_type": error_type},
            )
            raise
        activity.logger.info("activity completed in %.3f s", time.monotonic() - started)
        return result


# ---------------------------------------------------------------- API metrics


def install_http_metrics(app: Starlette) -> None:
    """Count and time API requests by route template (bounded labels), on the default registry."""
    app.add_middleware(HttpMetrics)


_CHILDREN: dict[tuple[int, tuple[str, ...]], Any] = {}


def child(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, looked up once: prometheus_client checks and locks on every
    call, and every API request and beacon makes several (no series is ever removed, so none
    goes stale)."""
    key = (id(metric), labels)
    found = _CHILDREN.get(key)
    if found is None:
        found = _CHILDREN[key] = metric.labels(*labels)
    return found


_api_metrics: tuple[Any, Any] | None = None


def http_instruments() -> tuple[Any, Any]:
    """The request counter {method, route, status} and latency histogram {method, route}."""
    global _api_metrics
    if _api_metrics is None:
        from prometheus_client import Counter, Histogram

        _api_metrics = (
            Counter(API_REQUESTS, "API requests", ["method", "route", "status"]),
            Histogram(API_LATENCY, "API request latency", ["method", "route"]),
        )
    return _api_metrics


_ROLLOUT_PATH = re.compile(r"^/rollouts/([^/]+)")


class HttpMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests, self.latency = http_instruments()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def record_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        path = str(scope.get("path", ""))
        found = _ROLLOUT_PATH.match(path)
        try:
            with rollout_context(found.group(1) if found else None):
                await self.app(scope, receive, record_status)
        finally:
            # Routing fills in scope["route"]: label by template, never by raw path.
            # A request the API's gate refused never reaches routing: it leaves its template.
            route = getattr(scope.get("route"), "path", None) or scope.get("skyline.route") or "unmatched"
            if not path.startswith("/metrics"):  # scrapes are not API traffic
                method = str(scope.get("method", ""))
                child(self.requests, method, route, str(status[0])).inc()
                child(self.latency, method, route).observe(time.perf_counter() - started)
