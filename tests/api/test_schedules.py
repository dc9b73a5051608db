"""Scheduled promotion: a Temporal Schedule promotes a canary waiting at its last step, within windows."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from skyline.settings import Settings
from tests.support.histories import save_history
from tests.support.rum import RumTarget
from tests.support.scenario import (
    create_apartment,
    make_bundle,
    parked_strategy,
    strategy,
    wait_for,
    wait_state,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def scheduled_body(apartment: str, bundle: Path, cron: str | None, bake: float = 1) -> dict[str, Any]:
    return {
        "apartment": apartment,
        "building": "header",
        "unit_id": "header",
        "version": "2.0.0",
        "bundle": {"path": str(bundle)},
        "strategy": strategy(steps=[100], bake_seconds=bake),
        "promotion": {"mode": "scheduled", "cron": cron, "timezone": "Asia/Seoul"},
        "actor": "alice",
    }


async def waiting_for_promotion(api: httpx.AsyncClient, rollout_id: str) -> dict[str, Any]:
    status = await wait_state(api, rollout_id, {"paused", "succeeded", "rolled_back", "failed"})
    assert status["state"] == "paused", status["reason"]
    assert status["paused_reason"].startswith("awaiting scheduled promotion")
    return status


async def test_schedule_promotes_a_canary_waiting_at_its_last_step(
    api: httpx.AsyncClient, rum: RumTarget, settings: Settings, temporal: Client, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    with rum.traffic(apartment, "header", "header", "2.0.0"):
        rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "2.0.0")
        body = scheduled_body(apartment, make_bundle(tmp_path / "b", "2.0.0"), "0 3 1 1 *")
        rollout_id = (await api.post("/rollouts", json=body)).json()["id"]
        schedule_id = f"promote.{rollout_id}"
        described = await api.get(f"/schedules/{schedule_id}")
        assert described.status_code == 200, described.text
        view = described.json()
        assert view["rollout_id"] == rollout_id and view["cron"] == ["0 3 1 1 *"]
        assert view["timezone"] == "Asia/Seoul" and not view["paused"] and view["next_runs"]
        assert schedule_id in [s["id"] for s in (await api.get("/schedules")).json()]
        await waiting_for_promotion(api, rollout_id)

        paused = await api.post(f"/schedules/{schedule_id}/pause", json={"note": "not today"})
        assert paused.json()["paused"] and paused.json()["note"] == "not today"
        unpaused = await api.post(f"/schedules/{schedule_id}/unpause", json={})
        assert not unpaused.json()["paused"]

        assert (await api.post(f"/schedules/{schedule_id}/trigger")).status_code == 200
        final = await wait_state(api, rollout_id, {"succeeded", "rolled_back", "failed"})
    assert final["state"] == "succeeded"
    promoted_by = [h["actor"] for h in final["history"] if h["action"] == "promote full"]
    assert promoted_by == ["schedule:alice"]
    # the rollout ended: its schedule is gone
    gone = await wait_for_schedule_gone(api, schedule_id)
    assert gone.status_code == 404
    await save_history(temporal, rollout_id, "canary_promoted_by_schedule")


async def wait_for_schedule_gone(api: httpx.AsyncClient, schedule_id: str) -> httpx.Response:
    deadline = time.monotonic() + 30
    while True:
        response = await api.get(f"/schedules/{schedule_id}")
        if response.status_code == 404 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.2)


async def test_promotion_inside_a_freeze_waits_for_the_window(
    api: httpx.AsyncClient, temporal: Client, rum: RumTarget, settings: Settings, tmp_path: Path
) -> None:
    # The worker judges the window on its own clock. A freeze from yesterday 00:00 to the day
    # after tomorrow 00:00 (UTC) holds now with a day to spare on either side, so the test
    # does not depend on when it runs (a freeze of "today" ended under it at midnight UTC).
    # The window arithmetic itself is tested on fixed instants in tests/skyline/test_windows.py.
    now = datetime.now(UTC)
    freeze = {
        "start_day": DAYS[(now - timedelta(days=1)).weekday()],
        "start": "00:00",
        "end_day": DAYS[(now + timedelta(days=2)).weekday()],
        "end": "00:00",
        "timezone": "UTC",
    }
    apartment = await create_apartment(api)
    apartment_doc = (await api.get(f"/apartments/{apartment}/manifest")).json()["apartments"][apartment]
    # a second apartment whose config carries the freeze window
    frozen = apartment + "-f"
    created = await api.post(
        "/apartments",
        json={
            "id": frozen,
            "apartment": {**apartment_doc, "config": {"promotion_windows": {"freeze": [freeze]}}},
        },
    )
    assert created.status_code == 201, created.text
    with rum.traffic(frozen, "header", "header", "2.0.0"):
        rum.wait_visible(settings.prometheus_url, frozen, "header", "header", "2.0.0")
        rollout_id = (
            await api.post(
                "/rollouts", json=scheduled_body(frozen, make_bundle(tmp_path / "b", "2.0.0"), None, bake=6)
            )
        ).json()["id"]
        await waiting_for_promotion(api, rollout_id)
        created_schedule = await api.post(
            "/schedules", json={"rollout_id": rollout_id, "cron": "0 3 1 1 *", "timezone": "UTC"}
        )
        assert created_schedule.status_code == 201, created_schedule.text
        duplicate = await api.post("/schedules", json={"rollout_id": rollout_id, "cron": "0 3 1 1 *"})
        assert duplicate.status_code == 409
        await api.post(f"/schedules/promote.{rollout_id}/trigger")

        deadline = time.monotonic() + 30
        runs: list[str] = []
        while time.monotonic() < deadline and not runs:
            runs = (await api.get(f"/schedules/promote.{rollout_id}")).json()["recent_runs"]
            await asyncio.sleep(0.2)
        assert runs and runs[0].startswith(f"promotion.{rollout_id}")
        promotion = temporal.get_workflow_handle(runs[0])
        details = ""
        while time.monotonic() < deadline and "release freeze" not in details:
            try:
                metadata = await promotion.query("__temporal_workflow_metadata")
                details = (
                    metadata["currentDetails"] if isinstance(metadata, dict) else metadata.current_details
                )
            except Exception:  # noqa: BLE001 - not started yet
                details = ""
        assert "release freeze" in details and "next opens" in details
        assert (await promotion.describe()).status == WorkflowExecutionStatus.RUNNING
        # what a person reads: the rollout's status and the schedule say the freeze blocks it
        still = await wait_for(api, rollout_id, lambda s: s["promotion_blocked"] is not None)
        assert still["state"] == "paused"  # not promoted during the freeze
        blocked = still["promotion_blocked"]
        assert blocked["kind"] == "freeze" and blocked["next_opens"] is not None
        assert blocked["reason"].startswith("release freeze (") and "next opens" in blocked["reason"]
        assert any(h["action"] == "promotion blocked by freeze" for h in still["history"])
        described = (await api.get(f"/schedules/promote.{rollout_id}")).json()
        assert described["promotion_blocked"]["reason"] == blocked["reason"]
        await api.post(f"/rollouts/{rollout_id}/rollback", json={"actor": "alice"})
        await promotion.terminate("test over")


async def test_bad_schedules_are_refused(api: httpx.AsyncClient) -> None:
    bad_cron = await api.post("/schedules", json={"rollout_id": "rollout.a.b", "cron": "every tuesday"})
    assert bad_cron.status_code == 422
    bad_id = await api.post("/schedules", json={"rollout_id": "nope", "cron": "0 10 * * *"})
    assert bad_id.status_code == 422 and bad_id.json()["error"]["field"] == "rollout_id"
    bad_zone = await api.post(
        "/schedules", json={"rollout_id": "rollout.a.b", "cron": "0 10 * * *", "timezone": "Mars/Olympus"}
    )
    assert bad_zone.status_code == 422 and "unknown time zone" in bad_zone.json()["error"]["message"]
    for method, path in (
        ("GET", "/schedules/promote.none"),
        ("POST", "/schedules/promote.none/pause"),
        ("POST", "/schedules/promote.none/trigger"),
        ("DELETE", "/schedules/promote.none"),
    ):
        response = await api.request(method, path)
        assert response.status_code == 404, (method, path, response.text)


async def test_a_rollout_can_be_scheduled_to_start_later(api: httpx.AsyncClient, tmp_path: Path) -> None:
    apartment = await create_apartment(api)
    body = scheduled_body(apartment, make_bundle(tmp_path / "b", "2.0.0"), None)
    body["promotion"] = {"mode": "automatic"}
    body["strategy"] = parked_strategy()
    start_at = datetime.now(UTC) + timedelta(seconds=3)
    body["start_at"] = start_at.isoformat()
    response = await api.post("/rollouts", json=body)
    assert response.status_code == 201, response.text
    rollout_id = response.json()["id"]
    # the building is reserved at once
    again = await api.post("/rollouts", json=body)
    assert again.status_code == 409
    status = await wait_for(api, rollout_id, lambda s: s["state"] == "progressing", timeout=60)
    assert datetime.fromisoformat(status["started_at"]) >= start_at - timedelta(milliseconds=50)
    await api.post(f"/rollouts/{rollout_id}/rollback", json={})
    past = {**body, "start_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()}
    past["building"] = "footer"
    refused = await api.post("/rollouts", json=past)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "start_at"
