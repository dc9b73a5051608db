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

import httpx
import pytest
from fastapi import FastAPI
from temporalio.client import Client

from adapters.manifest_store import ManifestStore
from adapters.storage import s3_client
from api.access import COLLECTOR_RULES, REDIRECTED_TO_COLLECTOR, RULES
from api.auth import TokenStore
from api.collector_redirect import collector_location, redirected
from api.deps import AppState
from api.main import create_app as create_api
from collector.main import create_app as create_collector
from skyline.settings import Settings
from stack.embedded import EmbeddedStack
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
