"""Progress deadline: active time only; a human's pause does not count."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from tests.support.histories import what_could_move
from tests.support.scenario import (
    create_apartment,
    make_bundle,
    parked_strategy,
    wait_for,
    wait_state,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")
ENDED = {"succeeded", "rolled_back", "failed"}


def body(apartment: str, bundle: Path, **strat: Any) -> dict[str, Any]:
    return {
        "apartment": apartment,
        "building": "header",
        "unit_id": "header",
        "version": "2.0.0",
        "bundle": {"path": str(bundle)},
        "strategy": parked_strategy(**strat),  # the deadline, not an analysis, ends these
        "max_duration_seconds": 4,
        "actor": "alice",
    }


async def test_a_rollout_that_outlives_its_deadline_rolls_back(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    rollout_id = (
        await api.post("/rollouts", json=body(apartment, make_bundle(tmp_path / "b", "2.0.0")))
    ).json()["id"]
    final = await wait_state(api, rollout_id, ENDED, timeout=60)
    assert final["state"] == "rolled_back"
    assert "progress deadline exceeded: 4s of active time" in final["reason"]
    took = datetime.fromisoformat(final["updated_at"]) - datetime.fromisoformat(final["started_at"])
    assert 4 <= took.total_seconds() < 30


async def test_time_paused_by_a_human_does_not_count(
    api: httpx.AsyncClient, temporal: Client, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    rollout_id = (
        await api.post("/rollouts", json=body(apartment, make_bundle(tmp_path / "b", "2.0.0")))
    ).json()["id"]
    await wait_state(api, rollout_id, {"progressing"})
    paused = await api.post(f"/rollouts/{rollout_id}/pause", json={"actor": "bob", "reason": "hold on"})
    assert paused.status_code == 200, paused.text
    # While a human holds it, nothing is scheduled that could end it: a deadline still
    # counting would be a pending timer.
    assert await what_could_move(temporal, rollout_id) == []
    # Hold it past the moment the 4 s deadline would have fired had the pause counted.
    started = datetime.fromisoformat(paused.json()["started_at"])
    await asyncio.sleep(max(0.0, 4.5 - (datetime.now(UTC) - started).total_seconds()))
    assert (await api.get(f"/rollouts/{rollout_id}")).json()["state"] == "paused"
    resumed = await api.post(f"/rollouts/{rollout_id}/resume", json={"actor": "bob"})
    assert resumed.status_code == 200
    final = await wait_state(api, rollout_id, ENDED, timeout=60)
    assert final["state"] == "rolled_back" and "progress deadline exceeded" in final["reason"]
    pause_at = next(h["at"] for h in final["history"] if h["action"] == "pause")
    resume_at = next(h["at"] for h in final["history"] if h["action"] == "resume")
    held = (datetime.fromisoformat(resume_at) - datetime.fromisoformat(pause_at)).total_seconds()
    took = (
        datetime.fromisoformat(final["updated_at"]) - datetime.fromisoformat(final["started_at"])
    ).total_seconds()
    assert held > 0 and took >= 4 + held


async def test_without_auto_rollback_the_deadline_pauses(api: httpx.AsyncClient, tmp_path: Path) -> None:
    apartment = await create_apartment(api)
    request = body(apartment, make_bundle(tmp_path / "b", "2.0.0"), auto_rollback=False)
    rollout_id = (await api.post("/rollouts", json=request)).json()["id"]
    paused = await wait_for(api, rollout_id, lambda s: "deadline" in (s["paused_reason"] or ""), timeout=60)
    assert paused["state"] == "paused" and paused["paused_reason"].startswith("progress deadline exceeded")
    assert (await api.post(f"/rollouts/{rollout_id}/rollback", json={})).status_code == 200
