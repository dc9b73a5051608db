"""Issue 22: evidence no one can forge cheaply, against the session stack (real API, Redis,
Prometheus, worker and Temporal), with honest sessions from 200 client networks flowing.

Both attacks of the security review, by one client network (addresses of 127.0.7.0/24):

- a healthy canary at 50 %: 60 tokens, each reporting [canary load_error, baseline loaded].
  Before: `rolled_back` ("canary 96.8% of 62 loads ... established"). Now: held, because
  the failures come from one client network.
- a canary failing 30 % of real loads: 100 tokens, each sending 50 canary and 50 baseline
  `loaded` beacons. Before: "gross harm ruled out" and the weight went 50 -> 100. Now: a
  session counts once per outcome, and successes from one network cannot outvote the real
  failures: never promoted.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.scenario import create_apartment, make_bundle, wait_for
from tests.support.sessions import Variant, honest_traffic

pytestmark = pytest.mark.asyncio(loop_scope="session")

BAKE = 30
STABLE = Variant("header", "1.0.0")
ATTACKER = [f"127.0.7.{i}" for i in range(1, 6)]  # five addresses, one client network


def judged() -> dict[str, Any]:
    # The judge's defaults but the timings: no single_network_evidence, no wide margins.
    return {
        "kind": "canary",
        "steps": [50, 100],
        "bake_seconds": BAKE,
        "analysis_interval_seconds": 2,
        "analysis_window_seconds": 10,
        "min_requests": 20,
    }


async def start(api: httpx.AsyncClient, apartment: str, version: str, tmp: Path) -> str:
    body = {
        "apartment": apartment,
        "building": "header",
        "unit_id": "header",
        "version": version,
        "bundle": {"path": str(make_bundle(tmp / version, version))},
        "strategy": judged(),
        "actor": "alice",
    }
    response = await api.post("/rollouts", json=body)
    assert response.status_code == 201, response.text
    rollout_id = str(response.json()["id"])
    await wait_for(api, rollout_id, lambda s: s["weight"] == 50 and s["state"] == "progressing", 60)
    return rollout_id


async def attack(base_url: str, apartment: str, sessions: int, beacons: list[dict[str, Any]]) -> int:
    """`sessions` tokens, each sending `beacons` (batches of 20); returns beacons accepted."""
    accepted = 0
    clients = [
        httpx.AsyncClient(base_url=base_url, transport=httpx.AsyncHTTPTransport(local_address=a), timeout=30)
        for a in ATTACKER
    ]

    async def send(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
        while True:  # the per-address limits: wait as told, the attacker has time
            response = await client.request(method, url, **kwargs)
            if response.status_code != 429 or response.json()["error"]["code"] == "session_limit":
                return response
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))

    # The strongest attacker since assignments are signed: it asks for bucket keys until one
    # lands in the canary's bucket and uses that one for every session (its tokens then cover
    # the canary and the stable unit alike).
    canary = next(b["version"] for b in beacons if b["version"] != STABLE.version)
    key = await canary_key(clients[0], apartment, f"header@{canary}", send)

    async def one(i: int) -> int:
        client = clients[i % len(clients)]
        params = {"apartment": apartment, "bucket": key}
        token = (await send(client, "GET", "/beacon-token", params=params)).json()["token"]
        sent = 0
        for start in range(0, len(beacons), 20):
            batch = {"token": token, "beacons": beacons[start : start + 20]}
            answer = await send(client, "POST", "/beacons", content=json.dumps(batch))
            sent += len(batch["beacons"]) if answer.status_code == 202 else 0
        return sent

    try:
        for first in range(0, sessions, 10):
            accepted += sum(await asyncio.gather(*(one(i) for i in range(first, min(sessions, first + 10)))))
    finally:
        for client in clients:
            await client.aclose()
    return accepted


async def canary_key(client: httpx.AsyncClient, apartment: str, unit: str, send: Any) -> str:
    """A bucket key the API assigns `unit` (building header): new keys until one is."""
    for _ in range(200):
        first = await send(client, "GET", "/beacon-token", params={"apartment": apartment})
        key = str(first.json()["bucket"])
        again = await send(client, "GET", "/beacon-token", params={"apartment": apartment, "bucket": key})
        if unit in again.json()["units"]["header"]:
            return key
    raise AssertionError(f"no bucket key of 200 was assigned {unit}")


def beacon(apartment: str, version: str, outcome: str) -> dict[str, Any]:
    found: dict[str, Any] = {
        "apartment": apartment,
        "building": "header",
        "unit": "header",
        "version": version,
        "outcome": outcome,
    }
    if outcome == "loaded":
        found["load_seconds"] = 0.2
    return found


def left_step_one(status: dict[str, Any]) -> bool:
    return status["state"] in {"paused", "rolled_back", "succeeded", "failed"} or status["weight"] == 100


async def test_one_network_cannot_force_the_rollback_of_a_healthy_canary(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    base = str(api.base_url)
    canary = Variant("header", "2.0.0")
    async with honest_traffic(base, apartment, "header", canary, STABLE, weight=50, per_second=8) as real:
        rollout_id = await start(api, apartment, "2.0.0", tmp_path)
        await asyncio.sleep(4)
        forged = [beacon(apartment, "2.0.0", "load_error"), beacon(apartment, "1.0.0", "loaded")]
        assert await attack(base, apartment, 60, forged) == 120
        final = await wait_for(api, rollout_id, left_step_one, BAKE + 60)
    assert real.sent > 30
    assert final["state"] != "rolled_back", final["reason"]
    assert final["state"] == "paused", final
    reason = final["paused_reason"] or ""
    assert "client network" in reason and "evidence" in reason, reason
    assert final["weight"] == 50


async def test_one_network_cannot_pass_a_canary_failing_thirty_percent_of_loads(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    base = str(api.base_url)
    canary = Variant("header", "3.0.0", error_ratio=0.3)
    rollout_id = await start(api, apartment, "3.0.0", tmp_path)
    forged = [beacon(apartment, "3.0.0", "loaded")] * 50 + [beacon(apartment, "1.0.0", "loaded")] * 50
    async with honest_traffic(base, apartment, "header", canary, STABLE, weight=50, per_second=2) as real:
        assert await attack(base, apartment, 100, forged) == 10_000
        final = await wait_for(api, rollout_id, left_step_one, BAKE + 60)
    assert real.failed > 0
    assert final["weight"] == 50 and final["state"] != "succeeded", final
    assert final["state"] in {"rolled_back", "paused"}, final
