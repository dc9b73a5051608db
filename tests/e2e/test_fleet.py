"""Fleet rollouts across apartments, batch by batch, with a failure that stops the fleet."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from adapters import search_attributes as search
from skyline.settings import Settings
from tests.support.histories import save_history
from tests.support.rum import RumTarget
from tests.support.scenario import create_apartment, make_bundle, strategy, unique
from tests.support.search import attributes_of, labels

pytestmark = pytest.mark.asyncio(loop_scope="session")
ENDED = {"succeeded", "failed", "rolled_back"}


async def wait_fleet(
    api: httpx.AsyncClient, fleet_id: str, predicate: Any, timeout: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await api.get(f"/fleets/{fleet_id}")
        if response.status_code == 200:
            last = response.json()
            if predicate(last):
                return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"fleet {fleet_id} never got there; last: {last}")


async def active_unit(edge: httpx.AsyncClient, settings: Settings, apartment: str) -> str:
    doc = (await edge.get(f"/{settings.s3_bucket}/manifests/{apartment}/manifest.json")).json()
    return str(doc["apartments"][apartment]["buildings"]["header"]["active_unit"])


def fleet_body(unit_id: str, apartments: list[str], bundle: Path, **extra: Any) -> dict[str, Any]:
    return {
        "building": "header",
        "unit_id": unit_id,
        "version": "2.0.0",
        "bundle": {"path": str(bundle)},
        "apartments": apartments,
        "strategy": strategy(steps=[50, 100], bake_seconds=1),
        "actor": "alice",
        **extra,
    }


async def test_a_failed_apartment_stops_the_fleet(
    api: httpx.AsyncClient,
    edge: httpx.AsyncClient,
    rum: RumTarget,
    settings: Settings,
    temporal: Client,
    tmp_path: Path,
) -> None:
    apartments = [await create_apartment(api) for _ in range(5)]
    unit_id = "header"
    flows = [
        rum.traffic(apt, "header", unit_id, "2.0.0", error_ratio=0.3 if i == 3 else 0.0)
        for i, apt in enumerate(apartments)
    ]
    with contextlib.ExitStack() as stack:
        for flow in flows:
            stack.enter_context(flow)
        for apt in apartments:
            rum.wait_visible(settings.prometheus_url, apt, "header", unit_id, "2.0.0")
        body = fleet_body(unit_id, apartments, make_bundle(tmp_path / "b", "2.0.0"), batch_size=2)
        # a fleet id per test: fleets are keyed by building and unit
        body["unit_id"] = unit_id
        created = await api.post("/fleets", json=body)
        assert created.status_code == 201, created.text
        fleet_id = created.json()["id"]
        final = await wait_fleet(api, fleet_id, lambda s: s["state"] in ENDED)
    assert final["batches"] == [apartments[0:2], apartments[2:4], apartments[4:5]]
    states = {apt: final["apartments"][apt]["state"] for apt in apartments}
    assert states == {
        apartments[0]: "succeeded",
        apartments[1]: "succeeded",
        apartments[2]: "succeeded",
        apartments[3]: "rolled_back",
        apartments[4]: "skipped",
    }
    assert final["state"] == "failed"
    assert apartments[3] in final["reason"] and "error_rate" in final["reason"]
    assert "later batches not started" in final["reason"]
    assert "error_rate" in final["apartments"][apartments[3]]["reason"]
    # on_failure=keep: the apartments already done keep the new unit; the fifth never saw it
    for apt in apartments[:3]:
        assert await active_unit(edge, settings, apt) == "header@2.0.0"
    for apt in apartments[3:]:
        assert await active_unit(edge, settings, apt) == "header@1.0.0"
    fifth = await api.get(f"/rollouts/rollout.{apartments[4]}.header")
    assert fifth.status_code == 404  # never started
    # published once: every apartment's rollout got the fleet's unit, no child published anything
    child = (await api.get(f"/rollouts/rollout.{apartments[0]}.header")).json()
    assert not any(h["action"] == "published" for h in child["history"])
    fleet_history = [h["action"] for h in final["history"]]
    assert fleet_history.count("published") == 1
    # The Temporal UI's list tells the fleet's rollouts apart as it does API-started ones:
    # unit, version, strategy and how each ended (issue 24), and the fleet itself likewise.
    children = {apt: f"rollout.{apt}.header" for apt in apartments[:4]}
    shown = await attributes_of(
        temporal,
        [fleet_id, *children.values()],
        lambda found: all(attrs.get(search.STATE) in ENDED for attrs in found.values()),
    )
    for apt, workflow_id in children.items():
        assert labels(shown[workflow_id]) == ("header", "2.0.0", "canary", states[apt]), apt
        assert shown[workflow_id].get(search.APARTMENT) == apt
    assert labels(shown[fleet_id]) == ("header", "2.0.0", "canary", "failed")


async def test_rollback_all_policy_and_whole_fleet_controls(
    api: httpx.AsyncClient,
    edge: httpx.AsyncClient,
    rum: RumTarget,
    settings: Settings,
    temporal: Client,
    tmp_path: Path,
) -> None:
    apartments = [await create_apartment(api) for _ in range(3)]
    with contextlib.ExitStack() as stack:
        for apt in apartments:
            stack.enter_context(rum.traffic(apt, "header", "header", "2.0.0"))
        for apt in apartments:
            rum.wait_visible(settings.prometheus_url, apt, "header", "header", "2.0.0")
        body = fleet_body(
            "header", apartments, make_bundle(tmp_path / "b", "2.0.0"), batch_size=1, batch_pause_seconds=300
        )
        body["building"] = "header"
        fleet_id = (await api.post("/fleets", json=body)).json()["id"]
        waiting = await wait_fleet(
            api,
            fleet_id,
            lambda s: s["apartments"] and s["apartments"][apartments[0]]["state"] == "succeeded",
        )
        assert waiting["apartments"][apartments[1]]["state"] == "pending"  # the pause between batches holds
        promoted = await api.post(f"/fleets/{fleet_id}/promote", json={"actor": "carol", "reason": "go on"})
        assert promoted.status_code == 200, promoted.text
        await wait_fleet(api, fleet_id, lambda s: s["apartments"][apartments[1]]["state"] == "succeeded")
        paused = await api.post(f"/fleets/{fleet_id}/pause", json={"actor": "dave"})
        assert paused.status_code == 200 and paused.json()["state"] == "paused"
        again = await api.post(f"/fleets/{fleet_id}/pause", json={})
        assert again.status_code == 409
        rolled = await api.post(f"/fleets/{fleet_id}/rollback", json={"actor": "dave", "reason": "abort"})
    assert rolled.status_code == 200, rolled.text
    final = rolled.json()
    assert final["state"] == "rolled_back" and "abort" in final["reason"]
    assert final["apartments"][apartments[0]]["state"] == "rolled_back"
    assert final["apartments"][apartments[1]]["state"] == "rolled_back"
    assert final["apartments"][apartments[0]]["weight"] == 0  # restored: not shown at 100 %
    assert final["apartments"][apartments[2]]["state"] == "skipped"
    for apt in apartments:
        assert await active_unit(edge, settings, apt) == "header@1.0.0"
    late = await api.post(f"/fleets/{fleet_id}/resume", json={})
    assert late.status_code == 409
    await save_history(temporal, fleet_id, "fleet_controlled_and_rolled_back")


async def test_bad_fleets_are_refused(api: httpx.AsyncClient, tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b", "2.0.0")
    dup = await api.post("/fleets", json=fleet_body(unique("u"), ["a", "a"], bundle))
    assert dup.status_code == 422 and "listed twice" in dup.json()["error"]["message"]
    empty = await api.post("/fleets", json=fleet_body(unique("u"), [], bundle))
    assert empty.status_code == 422
    missing = await api.get("/fleets/fleet.header.nothing")
    assert missing.status_code == 404
