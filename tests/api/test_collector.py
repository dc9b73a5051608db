"""The collector (collector/main.py) and the API's 308 to it (api/collector_redirect.py).

Both apps run in this process over the stack's real object storage and Redis; the
collector without a Temporal client, as `python -m collector` runs it.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send
from temporalio.client import Client

from adapters.manifest_store import ManifestStore
from adapters.storage import s3_client
from api.access import COLLECTOR_RULES, REDIRECTED_TO_COLLECTOR, RULES
from api.auth import TokenStore
from api.collector_redirect import collector_location, redirected
from api.deps import AppState
from api.main import create_app as create_api
from collector.fast_lane import FastLane
from collector.main import create_app as create_collector
from skyline.observability import API_REQUESTS
from skyline.settings import Settings
from stack.embedded import EmbeddedStack
from tests.api.test_redis_pipe import Server as RedisServer
from tests.support.beacons import beacon_token, text_body
from tests.support.routes import served_routes
from tests.support.scenario import create_apartment

COLLECTOR = "http://collector.test"


def _state(settings: Settings, temporal: Client | None) -> AppState:
    s3 = s3_client(settings)
    return AppState(
        settings=settings,
        temporal=temporal,
        store=ManifestStore(s3, settings.s3_bucket),
        tokens=TokenStore(settings, s3),
    )


@asynccontextmanager
async def running(app: FastAPI, state: AppState, base: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its state set as its lifespan would, called over ASGI from loopback."""
    app.state.skyline = state
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url=base, timeout=30) as client:
        yield client


@asynccontextmanager
async def collector(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_collector(settings), _state(settings, None), COLLECTOR) as client:
        yield client


def beacon(apartment: str) -> dict[str, object]:
    return {
        "apartment": apartment,
        "building": "header",
        "unit": "header",
        "version": "1.0.0",
        "outcome": "loaded",
        "load_seconds": 0.1,
    }


# ------------------------------------------------------------------ tables


def test_the_collector_table_is_public_browser_routes_of_the_api_table() -> None:
    assert COLLECTOR_RULES, "the collector serves something"
    assert set(COLLECTOR_RULES.values()) == {"public"}
    assert all(RULES[key] == access for key, access in COLLECTOR_RULES.items())
    assert set(COLLECTOR_RULES) >= REDIRECTED_TO_COLLECTOR
    # A browser refuses a redirected CORS preflight: the API answers OPTIONS itself.
    assert ("OPTIONS", "/beacons") not in REDIRECTED_TO_COLLECTOR


def test_every_collector_rule_is_a_route_the_collector_serves() -> None:
    served = set(served_routes(create_collector()))
    assert set(COLLECTOR_RULES) <= served, set(COLLECTOR_RULES) - served
    # The control routes its routers also hold are served but refused by its gate.
    assert ("POST", "/overrides") in served and ("POST", "/overrides") not in COLLECTOR_RULES


def test_redirected_paths_and_locations() -> None:
    assert redirected("POST", "/beacons")
    assert redirected("GET", "/apartments/shop/importmap.json")
    assert not redirected("OPTIONS", "/beacons")
    assert not redirected("GET", "/apartments/shop")
    assert not redirected("POST", "/overrides")
    assert not redirected("GET", "/healthz")
    assert collector_location("https://c.example/", "/beacons", b"") == "https://c.example/beacons"
    assert (
        collector_location("https://c.example/rum", "/beacon-token", b"apartment=shop&revision=3")
        == "https://c.example/rum/beacon-token?apartment=shop&revision=3"
    )


# ------------------------------------------------------------------ the collector


@pytest.mark.asyncio(loop_scope="session")
async def test_collector_serves_browser_routes_without_temporal(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    apartment = await create_apartment(api)
    async with collector(settings) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        token = await beacon_token(client, apartment)
        accepted = await client.post("/beacons", **text_body({"beacons": [beacon(apartment)]}, token))
        assert accepted.status_code == 202, accepted.text
        assert accepted.json() == {"accepted": 1}
        assert accepted.headers["access-control-allow-origin"] == "*"
        importmap = await client.get(f"/apartments/{apartment}/importmap.json")
        assert importmap.status_code == 200, importmap.text
        assert "imports" in importmap.json()
        info = await client.get("/loader")
        assert info.status_code == 200, info.text
        assert info.json()["beacons"] == f"{COLLECTOR}/beacons"
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200 and "skyline_unit_loads_total" in metrics.text


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/overrides"),  # in a router the collector includes, not in its table
        ("POST", "/overrides/revoke"),
        ("GET", "/rollouts"),
        ("POST", "/rollouts"),
        ("GET", "/apartments/shop"),
        ("GET", "/apartments/shop/shell"),
        ("GET", "/shells"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/tokens"),
    ],
)
async def test_collector_answers_404_for_every_other_route(
    settings: Settings, method: str, path: str
) -> None:
    async with collector(settings) as client:
        response = await client.request(method, path, content=b'{"apartment": "x"}')
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.asyncio(loop_scope="session")
async def test_collector_refuses_another_method_in_the_error_shape(settings: Settings) -> None:
    async with collector(settings) as client:
        response = await client.delete("/beacons")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert "POST" in response.headers["allow"]


# ------------------------------------------------------------------ the fast lane


def _refusals(apartment: str, token: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, httpx arguments) of requests both apps must answer alike."""
    good = beacon(apartment)
    return [
        ("POST", "/beacons", text_body({"beacons": [good]}, token)),
        ("POST", "/beacons", {"content": b"{not json", "headers": {"content-type": "text/plain"}}),
        ("POST", "/beacons", {"content": b"[1, 2]", "headers": {"content-type": "text/plain"}}),
        ("POST", "/beacons", {"content": b"x" * 70_000, "headers": {"content-type": "text/plain"}}),
        ("POST", "/beacons", text_body({"beacons": [good]}, "forged.token")),
        ("POST", "/beacons", text_body({"beacons": [{**good, "apartment": "elsewhere"}]}, token)),
        ("POST", "/beacons", text_body({"beacons": [{**good, "outcome": "exploded"}]}, token)),
        ("GET", f"/beacon-token?apartment={apartment}&revision=abc", {}),
        ("GET", "/beacon-token?apartment=no-such-apartment", {}),
        ("GET", "/beacon-token?apartment=Not%20A%20Slug", {}),
        ("GET", "/beacon-token", {}),
    ]


def _shape(response: httpx.Response) -> tuple[int, str | None, str | None, str | None]:
    body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    return (
        response.status_code,
        error["code"] if error else None,
        error.get("field") if error else None,
        response.headers.get("access-control-allow-origin"),
    )


@pytest.mark.asyncio(loop_scope="session")
async def test_the_fast_lane_answers_as_the_apis_routes_do(
    api: httpx.AsyncClient, settings: Settings, temporal: Client
) -> None:
    """The collector answers its two per-page-load routes outside FastAPI's layers
    (collector/fast_lane.py); the API answers them through its routes. Same requests, same
    statuses, codes, fields and CORS header."""
    apartment = await create_apartment(api)
    conf = settings.model_copy(update={"collector_url": None})
    async with (
        collector(settings) as fast,
        running(create_api(conf), _state(conf, temporal), "http://api.test") as routed,
    ):
        for method, path, kwargs in _refusals(apartment, await beacon_token(fast, apartment)):
            answers = [_shape(await c.request(method, path, **kwargs)) for c in (fast, routed)]
            assert answers[0] == answers[1], (method, path, answers)
        # Sanity: the cases above include an acceptance and refusals of every kind.
        seen = {
            _shape(await fast.request(m, p, **k))[0]
            for m, p, k in _refusals(apartment, await beacon_token(fast, apartment))
        }
        assert {202, 400, 401, 403, 404, 413, 422} <= seen, seen
        # A token from the fast lane: its body is the route's model, no-store, CORS.
        token = await fast.get("/beacon-token", params={"apartment": apartment})
        assert token.status_code == 200
        assert set(token.json()) == {
            "token",
            "apartment",
            "session",
            "expires_at",
            "units",
            "overrides",
            "bucket",
        }
        assert token.headers["cache-control"] == "no-store"


@pytest.mark.asyncio(loop_scope="session")
async def test_the_fast_lane_leaves_control_characters_to_the_gate(settings: Settings) -> None:
    async with collector(settings) as client:
        refused = await client.get("/beacon-token", params={"apartment": "a\nb"})
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "invalid_characters"


@pytest.mark.asyncio(loop_scope="session")
async def test_the_fast_lane_counts_requests_by_route_and_status(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    apartment = await create_apartment(api)

    def count(method: str, route: str, status: str) -> float:
        labels = {"method": method, "route": route, "status": status}
        return REGISTRY.get_sample_value(f"{API_REQUESTS}_total", labels) or 0.0

    before = (
        count("GET", "/beacon-token", "200"),
        count("POST", "/beacons", "202"),
        count("POST", "/beacons", "400"),
    )
    async with collector(settings) as client:
        token = await beacon_token(client, apartment)
        assert (
            await client.post("/beacons", **text_body({"beacons": [beacon(apartment)]}, token))
        ).status_code == 202
        assert (
            await client.post("/beacons", content=b"{", headers={"content-type": "text/plain"})
        ).status_code == 400
    after = (
        count("GET", "/beacon-token", "200"),
        count("POST", "/beacons", "202"),
        count("POST", "/beacons", "400"),
    )
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1]


@pytest.mark.asyncio
async def test_an_unforeseen_error_in_the_fast_lane_is_a_500_in_the_error_shape() -> None:
    async def broken(request: Request) -> Response:
        raise RuntimeError("boom")

    async def rest(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("the rest of the app", 200)(scope, receive, send)

    lane = FastLane(rest, {("POST", "/beacons"): broken})
    transport = httpx.ASGITransport(app=lane)
    async with httpx.AsyncClient(transport=transport, base_url=COLLECTOR) as client:
        failed = await client.post("/beacons", content=b"{}")
        other = await client.get("/beacons")  # not the lane's (method, path): the app's
    assert failed.status_code == 500
    assert failed.json()["error"]["code"] == "internal_error"
    assert "boom" not in failed.text  # the log has it, the browser does not
    assert other.text == "the rest of the app"


# ------------------------------------------------------------------ the API's 308


@pytest.mark.asyncio(loop_scope="session")
async def test_api_redirects_browser_traffic_to_the_collector(settings: Settings, temporal: Client) -> None:
    conf = settings.model_copy(update={"collector_url": COLLECTOR})
    async with running(create_api(conf), _state(conf, temporal), "http://api.test") as client:
        body = json.dumps({"token": "t", "beacons": [beacon("shop")]})
        posted = await client.post("/beacons", content=body, headers={"content-type": "text/plain"})
        assert posted.status_code == 308
        assert posted.headers["location"] == f"{COLLECTOR}/beacons"
        assert posted.headers["access-control-allow-origin"] == "*"
        assert posted.headers["cache-control"] == "no-store"
        token = await client.get("/beacon-token", params={"apartment": "shop", "revision": "2"})
        assert token.status_code == 308
        assert token.headers["location"] == f"{COLLECTOR}/beacon-token?apartment=shop&revision=2"
        for path in ("/overrides/unit?token=x", "/apartments/shop/importmap.json", "/loader.js"):
            moved = await client.get(path)
            assert moved.status_code == 308, path
            assert moved.headers["location"] == COLLECTOR + path
        # Served by the API itself: the preflight, its health, its metrics, and where to beacon.
        preflight = await client.options("/beacons")
        assert preflight.status_code in (200, 204), preflight.text
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
        info = await client.get("/loader")
        assert info.status_code == 200, info.text
        assert info.json()["beacons"] == f"{COLLECTOR}/beacons"
        # The gate still runs first: control characters are refused, not redirected.
        refused = await client.get("/beacon-token", params={"apartment": "a\nb"})
        assert refused.status_code == 422


@pytest.mark.asyncio(loop_scope="session")
async def test_api_without_a_collector_serves_browser_traffic_itself(
    api: httpx.AsyncClient, settings: Settings, temporal: Client
) -> None:
    apartment = await create_apartment(api)
    conf = settings.model_copy(update={"collector_url": None})
    async with running(create_api(conf), _state(conf, temporal), "http://api.test") as client:
        token = await beacon_token(client, apartment)
        accepted = await client.post("/beacons", **text_body({"beacons": [beacon(apartment)]}, token))
        assert accepted.status_code == 202, accepted.text
        info = await client.get("/loader")
        assert info.json()["beacons"] == "http://api.test/beacons"


# ------------------------------------------------------------------ the stack's collector process


@pytest.mark.asyncio(loop_scope="session")
async def test_the_stacks_collector_counts_beacons_prometheus_scrapes(
    api: httpx.AsyncClient, settings: Settings, stack: EmbeddedStack
) -> None:
    apartment = await create_apartment(api)
    async with httpx.AsyncClient(base_url=stack.collector_url, timeout=30) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert (await client.get("/rollouts")).status_code == 404
        for _ in range(3):  # three page loads: a session counts a unit's load once
            token = await beacon_token(client, apartment)
            accepted = await client.post("/beacons", **text_body({"beacons": [beacon(apartment)]}, token))
            assert accepted.status_code == 202, accepted.text
    query = f'sum(skyline_unit_loads_total{{job="skyline-collector",apartment="{apartment}"}})'
    async with httpx.AsyncClient(base_url=settings.prometheus_url, timeout=10) as prometheus:
        deadline = time.monotonic() + 30
        seen = 0.0
        while time.monotonic() < deadline:
            result = (await prometheus.get("/api/v1/query", params={"query": query})).json()["data"]["result"]
            seen = float(result[0]["value"][1]) if result else 0.0
            if seen >= 3:
                break
            await asyncio.sleep(0.5)  # polling Prometheus' next scrape, bounded by the deadline
    assert seen == 3


def test_the_documented_collector_table_is_the_code_table() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text(encoding="utf-8")
    section = text[text.index("| collector route |") :]
    section = section[: section.index("\n\n")]
    rows = re.findall(r"^\|\s*`([A-Z]+) (/[^`]*)`\s*\|\s*([a-z]+)\s*\|", section, re.MULTILINE)
    assert {(method, path): rule for method, path, rule in rows} == dict(COLLECTOR_RULES)


@pytest.mark.asyncio(loop_scope="session")
async def test_a_hung_evidence_store_is_a_503_not_a_hang(
    api: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    """Redis stopped (SIGSTOP: connections open, nothing answered): beacon tokens, beacons and
    override lookups are answered 503 `evidence_store_unavailable` with CORS and Retry-After
    within the store's timeout, counted as refusals; once Redis runs again, 202."""
    apartment = await create_apartment(api)
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    conf = settings.model_copy(update={"redis_url": redis_server.url, "redis_timeout_seconds": 0.3})
    try:
        async with collector(conf) as client:
            token = await beacon_token(client, apartment)
            refused = ("skyline_beacons_refused_total", {"reason": "unavailable"})
            before = REGISTRY.get_sample_value(*refused) or 0
            redis_server.pause(True)
            try:
                answers = [
                    await client.get("/beacon-token", params={"apartment": apartment}),
                    await client.post("/beacons", **text_body({"beacons": [beacon(apartment)]}, token)),
                    await client.get("/overrides/unit", params={"token": "x"}),
                ]
            finally:
                redis_server.pause(False)
            for answer in answers:
                assert answer.status_code == 503, (answer.request.url, answer.text)
                assert answer.json()["error"]["code"] == "evidence_store_unavailable"
                assert answer.headers["retry-after"] == "1"
                assert answer.headers["access-control-allow-origin"] == "*"
            assert REGISTRY.get_sample_value(*refused) == before + 1  # the beacon request's refusal
            again = await client.post("/beacons", **text_body({"beacons": [beacon(apartment)]}, token))
            assert again.status_code == 202, again.text
    finally:
        if redis_server.process is not None:
            redis_server.process.stop()
