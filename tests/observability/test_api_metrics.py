"""API metrics by route template and log lines with the rollout id, in-process and on the real API."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from skyline.observability import API_REQUESTS, JsonFormatter, install_http_metrics

pytestmark = pytest.mark.asyncio(loop_scope="session")


def sample(route: str, status: str, method: str = "GET") -> float:
    value = REGISTRY.get_sample_value(
        f"{API_REQUESTS}_total", {"method": method, "route": route, "status": status}
    )
    return value or 0.0


async def test_requests_are_counted_by_route_template_with_the_rollout_id_in_logs() -> None:
    app = FastAPI()
    install_http_metrics(app)
    log = logging.getLogger("skyline.test.api")

    @app.get("/rollouts/{rollout_id}")
    async def get_rollout(rollout_id: str) -> dict[str, str]:
        log.info("looked up")
        return {"id": rollout_id}

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    before_ok = sample("/rollouts/{rollout_id}", "200")
    before_missing = sample("unmatched", "404")
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            assert (await client.get("/rollouts/rollout.shop.header")).status_code == 200
            assert (await client.get("/rollouts/rollout.shop.footer")).status_code == 200
            assert (await client.get("/no/such/page")).status_code == 404
    finally:
        log.removeHandler(handler)
    # one series per route template, never per raw path (bounded cardinality)
    assert sample("/rollouts/{rollout_id}", "200") == before_ok + 2
    assert sample("unmatched", "404") == before_missing + 1
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["rollout_id"] for line in lines] == ["rollout.shop.header", "rollout.shop.footer"]


async def test_the_running_api_exports_request_metrics(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).status_code == 200
    assert (await api.get("/rollouts/rollout.nope.nothing")).status_code == 404
    exposition = (await api.get("/metrics/")).text
    assert 'skyline_api_requests_total{method="GET",route="/healthz",status="200"}' in exposition
    assert 'route="/rollouts/{rollout_id}",status="404"' in exposition
    assert "skyline_api_request_duration_seconds_bucket" in exposition
