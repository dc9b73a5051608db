"""A real worker process runs a real rollout: its metrics, its JSON logs, and no secret anywhere.

One private worker (python -m worker, own task queue, distinctive secrets in
its settings, tuned concurrency) runs one canary rollout to success against
the session stack. Prometheus answers 503 to the first analysis query, so one
activity attempt fails and is retried.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from temporalio.client import Client

from skyline.observability import WORKER_METRICS
from skyline.rollout import RolloutStatus
from skyline.settings import Settings
from stack.embedded import EmbeddedStack
from tests.observability.support import (
    TERMINAL,
    PrometheusGate,
    WorkerProcess,
    rollout_spec,
    settings_of,
    start_rollout,
    wait_status,
)
from tests.support.rum import RumTarget
from tests.support.scenario import create_apartment, make_bundle

pytestmark = pytest.mark.asyncio(loop_scope="session")

ACTIVITY_SLOTS = 7
WORKFLOW_SLOTS = 9


@dataclass
class Run:
    worker: WorkerProcess
    secrets: dict[str, str]
    rollout_id: str
    apartment: str
    status: RolloutStatus
    history_json: str


@pytest.fixture(scope="module")
def gate(settings: Settings) -> Iterator[PrometheusGate]:
    g = PrometheusGate(settings.prometheus_url)
    yield g
    g.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def run(
    stack: EmbeddedStack,
    temporal: Client,
    rum: RumTarget,
    settings: Settings,
    gate: PrometheusGate,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Run]:
    tag = uuid.uuid4().hex
    secrets = {
        # The real one: the embedded S3 server takes signed requests only (stack/s3auth.py), and
        # it is random per stack, so it is as good a needle for the leak checks as a made-up one.
        "SKYLINE_AWS_SECRET_ACCESS_KEY": stack.s3_credentials()["SKYLINE_AWS_SECRET_ACCESS_KEY"],
        "SKYLINE_TEMPORAL_API_KEY": f"temporal-api-key-{tag}",
        "SKYLINE_CLOUDFLARE_API_TOKEN": f"cloudflare-token-{tag}",
        "SKYLINE_FASTLY_API_TOKEN": f"fastly-token-{tag}",
        "SKYLINE_WEBHOOK_SECRET": f"webhook-secret-{tag}",
    }
    worker = WorkerProcess(
        stack,
        tmp_path_factory.mktemp("worker"),
        {
            **secrets,
            "SKYLINE_TEMPORAL_TLS": "false",  # the dev server speaks plaintext; the key is still sent
            "SKYLINE_PROMETHEUS_URL": gate.url,
            "SKYLINE_WORKER_MAX_CONCURRENT_ACTIVITIES": str(ACTIVITY_SLOTS),
            "SKYLINE_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS": str(WORKFLOW_SLOTS),
        },
    )
    conf = settings_of(worker.env)
    assert conf.temporal_api_key is not None
    assert conf.worker_activity_threads == ACTIVITY_SLOTS + conf.worker_max_concurrent_local_activities
    await worker.start(temporal)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.ports.api}", timeout=60) as api:
            apartment = await create_apartment(api)
        bundle = make_bundle(tmp_path_factory.mktemp("bundle"), "1.1.0")
        with rum.traffic(apartment, "header", "header", "1.1.0", error_ratio=0.0, load_seconds=0.2):
            rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "1.1.0")
            gate.fail_next(1)
            handle = await start_rollout(temporal, worker, rollout_spec(apartment, bundle, "1.1.0"))
            status = await wait_status(handle, TERMINAL | {"paused"})
        history = await handle.fetch_history()
        yield Run(worker, secrets, handle.id, apartment, status, history.to_json())
    finally:
        worker.stop()


def samples(text: str, name: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples if s.name == name]


def value(text: str, name: str, **labels: str) -> float:
    return sum(s.value for s in samples(text, name) if all(s.labels.get(k) == v for k, v in labels.items()))


async def test_the_rollout_succeeds_on_the_private_worker(run: Run) -> None:
    assert run.status.state == "succeeded", (run.status.paused_reason, run.status.reason)


async def test_rollout_activity_and_sdk_metrics_are_exported(run: Run) -> None:
    text = run.worker.metrics()
    exported = {
        s.name.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert exported >= WORKER_METRICS, WORKER_METRICS - exported

    apt = run.apartment
    assert value(text, "skyline_rollouts_started_total", apartment=apt) == 1
    assert value(text, "skyline_rollouts_finished_total", apartment=apt, outcome="succeeded") == 1
    assert value(text, "skyline_rollout_duration_seconds_count", outcome="succeeded") >= 1
    # one observation per weight the traffic stood at
    steps = {
        s.labels["weight"]: s.value for s in samples(text, "skyline_rollout_step_duration_seconds_count")
    }
    assert {"5", "25", "50", "100"} <= steps.keys()
    assert value(text, "skyline_analysis_verdicts_total", verdict="pass") >= len(run.status.analyses) > 0
    # the 503 from Prometheus failed one attempt of the analysis activity, which Temporal retried
    failures = samples(text, "skyline_activity_failures_total")
    assert [(s.labels["error_type"], s.value) for s in failures] == [("PrometheusDown", 1.0)], failures
    assert failures[0].labels["activity_type"] == "gather_figures"
    # the tuning reached the worker: its slot gauges start from the configured sizes
    assert value(text, "temporal_worker_task_slots_available", worker_type="ActivityWorker") == ACTIVITY_SLOTS
    assert value(text, "temporal_worker_task_slots_available", worker_type="WorkflowWorker") == WORKFLOW_SLOTS
    # graphed in deploy/grafana (tests/deploy cannot see it before any activity ran)
    assert samples(text, "temporal_activity_schedule_to_start_latency_bucket")


async def test_logs_are_json_lines_with_the_rollout_id(run: Run) -> None:
    lines = run.worker.log_lines()  # raises if any line is not JSON
    assert any(f"{ACTIVITY_SLOTS} activity slots" in line["message"] for line in lines)
    mine = [line for line in lines if line.get("rollout_id") == run.rollout_id]
    completed = {line["activity"] for line in mine if line["message"].startswith("activity completed")}
    assert {"prepare_rollout", "publish_bundle", "write_and_serve", "gather_figures"} <= completed
    failed = [line for line in mine if line["message"].startswith("activity failed")]
    assert len(failed) == 1 and failed[0]["error_type"] == "PrometheusDown" and failed[0]["attempt"] == 1
    assert failed[0]["level"] == "WARNING"


async def test_no_secret_reaches_history_logs_or_metrics(run: Run) -> None:
    log_text = run.worker.log_path.read_text(encoding="utf-8")
    metrics = run.worker.metrics()
    assert run.apartment in run.history_json and run.rollout_id in log_text  # the scans see real content
    for variable, secret in run.secrets.items():
        assert secret not in run.history_json, f"{variable} is in the workflow history"
        assert secret not in log_text, f"{variable} is in the worker's log"
        assert secret not in metrics, f"{variable} is in the worker's metrics"
