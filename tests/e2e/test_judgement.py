"""The sequential judge on the real stack: real beacons-shaped metrics in Prometheus, real workflow.

header@1.0.0 is the active unit (the baseline) and gets traffic beside the
canary, so the judge compares the two as it does in production.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from skyline.settings import Settings
from tests.support.rum import RumTarget
from tests.support.scenario import create_apartment, make_bundle, strategy, wait_for, wait_state

pytestmark = pytest.mark.asyncio(loop_scope="session")
ROOT = Path(__file__).resolve().parents[2]
FAST = 50  # loads per tick (10 ticks a second) for each variant


def judged(**overrides: Any) -> dict[str, Any]:
    """Two steps, 50 % then 100 %; a 1 pp floor so a few thousand loads can rule out harm."""
    settings: dict[str, Any] = {
        "steps": [50, 100],
        "bake_seconds": 4,
        "error_margin_absolute": 0.01,
        "first_unit_needs_confirmation": True,
    }
    return strategy(**{**settings, **overrides})


async def start(api: httpx.AsyncClient, apartment: str, version: str, tmp: Path, **overrides: Any) -> str:
    body = {
        "apartment": apartment,
        "building": "header",
        "unit_id": "header",
        "version": version,
        "bundle": {"path": str(make_bundle(tmp / version, version))},
        "strategy": judged(**overrides),
        "actor": "alice",
    }
    response = await api.post("/rollouts", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_a_canary_like_its_baseline_is_promoted_and_its_looks_replay(
    api: httpx.AsyncClient, rum: RumTarget, settings: Settings, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    with (
        rum.traffic(apartment, "header", "header", "1.0.0", loads_per_tick=FAST),
        rum.traffic(apartment, "header", "header", "1.1.0", loads_per_tick=FAST),
    ):
        rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "1.0.0")
        rollout_id = await start(api, apartment, "1.1.0", tmp_path)
        final = await wait_state(
            api, rollout_id, {"succeeded", "rolled_back", "failed", "paused"}, timeout=90
        )
    assert final["state"] == "succeeded", (final["paused_reason"], final["reason"])
    assert final["basis"] == "concurrent"
    assert [s["decision"] for s in final["looks"]] == ["promote", "promote"]
    last = final["last_analysis"]
    assert last["verdict"] == "pass" and "ruled out" in last["reason"]
    # The export is the replay format, and replaying it reaches the same decisions.
    docs = (await api.get(f"/rollouts/{rollout_id}/looks")).json()
    assert [d["step"]["weight"] for d in docs] == [50, 100]
    assert docs[1]["earlier"] and docs[1]["earlier"][0]["weight"] == 50
    replayed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cli", "judge", "replay", "-"],
        input="\n".join(json.dumps(d) for d in docs),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    decisions = [json.loads(line)["decision"] for line in replayed.stdout.splitlines()]
    assert decisions == ["promote", "promote"]
    one = (await api.get(f"/rollouts/{rollout_id}/looks", params={"step": 1})).json()
    assert len(one) == 1 and one[0]["step"]["last"] is True


async def test_overwhelming_failure_rolls_back_at_the_first_look(
    api: httpx.AsyncClient, rum: RumTarget, settings: Settings, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    with (
        rum.traffic(apartment, "header", "header", "1.0.0", loads_per_tick=FAST),
        rum.traffic(apartment, "header", "header", "1.2.0", loads_per_tick=FAST, error_ratio=0.3),
    ):
        rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "1.0.0")
        rollout_id = await start(api, apartment, "1.2.0", tmp_path, bake_seconds=60)
        final = await wait_state(
            api, rollout_id, {"succeeded", "rolled_back", "failed", "paused"}, timeout=60
        )
    assert final["state"] == "rolled_back"
    assert "error_rate" in final["reason"] and "established" in final["reason"]
    # decided well before the 60 s bake was over
    assert len(final["looks"][0]["looks"]) < 20


async def test_a_canary_that_gets_slow_half_way_through_a_step_is_caught(
    api: httpx.AsyncClient, rum: RumTarget, settings: Settings, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    with rum.traffic(apartment, "header", "header", "1.0.0", loads_per_tick=FAST):
        rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "1.0.0")
        with rum.traffic(apartment, "header", "header", "1.3.0", loads_per_tick=FAST):
            rollout_id = await start(api, apartment, "1.3.0", tmp_path, bake_seconds=120)
            healthy = await wait_for(
                api, rollout_id, lambda s: s["looks"] and len(s["looks"][0]["looks"]) >= 4, timeout=60
            )
            assert healthy["state"] == "progressing"
        # The same version now loads three times slower: late onset, not diluted by the healthy start.
        with rum.traffic(apartment, "header", "header", "1.3.0", loads_per_tick=FAST, load_seconds=0.6):
            final = await wait_state(
                api, rollout_id, {"succeeded", "rolled_back", "failed", "paused"}, timeout=60
            )
    assert final["state"] == "rolled_back", (final["paused_reason"], final["reason"])
    # Every load is now 0.6 s: past the baseline's median edge (load_time) and its p90 edge
    # (load_tail_p90); whichever check establishes it first names the rollback.
    assert "load_time" in final["reason"] or "load_tail" in final["reason"], final["reason"]
    assert len(final["looks"][0]["looks"]) > 4


async def test_no_canary_traffic_holds_and_says_what_is_missing(
    api: httpx.AsyncClient, rum: RumTarget, settings: Settings, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    with rum.traffic(apartment, "header", "header", "1.0.0", loads_per_tick=FAST):
        rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "1.0.0")
        rollout_id = await start(api, apartment, "1.4.0", tmp_path)
        held = await wait_state(api, rollout_id, {"paused", "succeeded", "rolled_back"}, timeout=60)
        assert held["state"] == "paused"
        assert "only 0 canary loads in this step" in held["paused_reason"] and held["weight"] == 50
        # resume asks for one more bake period, it does not move on
        resumed = await api.post(f"/rollouts/{rollout_id}/resume", json={"actor": "bob"})
        assert resumed.status_code == 200
        again = await wait_for(
            api,
            rollout_id,
            lambda s: (
                s["state"] == "paused"
                and s["history"][-1]["action"] == "pause"
                and s["history"][-2]["action"] == "resume"
            ),
            timeout=60,
        )
        assert again["weight"] == 50 and again["looks"][0]["bake_seconds"] == 8
    rolled = await api.post(f"/rollouts/{rollout_id}/rollback", json={"actor": "bob"})
    assert rolled.status_code == 200 and rolled.json()["state"] == "rolled_back"
