"""One real canary rollout end to end: API → Temporal → S3 → Varnish → Prometheus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from skyline.settings import Settings
from tests.support.histories import save_history, what_could_move
from tests.support.rum import RumTarget
from tests.support.scenario import create_apartment, make_bundle, strategy, wait_for, wait_state
from workflows.rollout import RolloutWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")


def manifest_path(settings: Settings, apartment: str) -> str:
    return f"/{settings.s3_bucket}/manifests/{apartment}/manifest.json"


async def edge_manifest(edge: httpx.AsyncClient, settings: Settings, apartment: str) -> dict[str, Any]:
    response = await edge.get(manifest_path(settings, apartment))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def rollout_body(apartment: str, bundle: Path, version: str, **strategy_overrides: Any) -> dict[str, Any]:
    return {
        "apartment": apartment,
        "building": "header",
        "unit_id": "header",
        "version": version,
        "bundle": {"path": str(bundle)},
        "strategy": strategy(**strategy_overrides),
        "actor": "alice",
        "reason": "ship the new header",
    }


async def start(api: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await api.post("/rollouts", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["state"] == "publishing"
    return str(created["id"])


async def test_canary_that_passes_every_step_is_promoted(
    api: httpx.AsyncClient,
    edge: httpx.AsyncClient,
    rum: RumTarget,
    settings: Settings,
    temporal: Client,
    tmp_path: Path,
) -> None:
    apartment = await create_apartment(api)
    before = (await api.get(f"/apartments/{apartment}/manifest")).json()
    bundle = make_bundle(tmp_path / "b", "1.1.0")
    with rum.traffic(apartment, "header", "header", "1.1.0", error_ratio=0.0, load_seconds=0.2):
        rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "1.1.0")
        rollout_id = await start(api, rollout_body(apartment, bundle, "1.1.0"))
        final = await wait_state(api, rollout_id, {"succeeded", "rolled_back", "failed", "paused"})
    assert final["state"] == "succeeded", (final["paused_reason"], final["reason"], final["last_analysis"])
    assert [a["verdict"] for a in final["analyses"]][-1] == "pass"
    assert {a["weight"] for a in final["analyses"]} == {5, 25, 50, 100}
    # seed 000's health score: error rate and latency measured, no baseline traffic, no feedback
    last = final["last_analysis"]
    assert set(last["health_components"]) == {"error_rate", "latency"}
    assert 50 < last["health_score"] <= 100

    # One revision per step, in order, then the promotion.
    revisions = final["revisions"]
    assert revisions == list(range(int(before["version"]) + 1, int(before["version"]) + 6))
    weights = []
    for revision in revisions[:-1]:
        stored = (await api.get(f"/apartments/{apartment}/revisions/{revision}")).json()
        canary = stored["apartments"][apartment]["buildings"]["header"]["units"]["header@1.1.0"]
        weights.append(canary["rollout"]["percentage"])
        assert canary["checksum"].startswith("sha384-")
    assert weights == [5, 25, 50, 100]

    served = await edge_manifest(edge, settings, apartment)
    header = served["apartments"][apartment]["buildings"]["header"]
    assert served["version"] == str(revisions[-1])
    assert header["active_unit"] == "header@1.1.0"
    assert header["units"]["header@1.1.0"]["status"] == "stable"
    assert header["units"]["header@1.0.0"]["status"] == "deprecated"
    # the unit's URL is the edge URL of the immutable entry module, with SRI that matches it
    unit = header["units"]["header@1.1.0"]
    entry = await edge.get(unit["url"])
    assert entry.status_code == 200
    assert "immutable" in entry.headers["cache-control"]
    assert entry.headers["content-type"].startswith("text/javascript")

    # The history this run wrote replays against the current workflow code.
    history = await save_history(temporal, rollout_id, "canary_promoted")
    await Replayer(workflows=[RolloutWorkflow], data_converter=pydantic_data_converter).replay_workflow(
        history
    )


async def test_error_rate_breach_rolls_back_automatically(
    api: httpx.AsyncClient,
    edge: httpx.AsyncClient,
    rum: RumTarget,
    settings: Settings,
    temporal: Client,
    tmp_path: Path,
) -> None:
    apartment = await create_apartment(api)
    before = await edge_manifest(edge, settings, apartment)
    bundle = make_bundle(tmp_path / "b", "1.2.0")
    with rum.traffic(apartment, "header", "header", "1.2.0", error_ratio=0.2):
        rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "1.2.0")
        rollout_id = await start(api, rollout_body(apartment, bundle, "1.2.0", bake_seconds=30))
        final = await wait_state(api, rollout_id, {"succeeded", "rolled_back", "failed"})
    assert final["state"] == "rolled_back", final
    assert "error_rate" in final["reason"] and "analysis failed" in final["reason"]
    failing = final["last_analysis"]
    assert failing["verdict"] == "fail"
    error_check = next(c for c in failing["checks"] if c["name"] == "error_rate")
    assert error_check["value"] > 0.01 and error_check["verdict"] == "fail"
    # never got past the first step
    assert final["analyses"][0]["weight"] == 5 and all(a["weight"] == 5 for a in final["analyses"])

    served = await edge_manifest(edge, settings, apartment)
    assert served["apartments"] == before["apartments"]
    assert int(served["version"]) > int(before["version"])
    await save_history(temporal, rollout_id, "canary_rolled_back")


async def test_no_data_holds_and_never_promotes(
    api: httpx.AsyncClient, edge: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    bundle = make_bundle(tmp_path / "b", "2.0.0")
    rollout_id = await start(api, rollout_body(apartment, bundle, "2.0.0", bake_seconds=1))
    paused = await wait_state(api, rollout_id, {"paused", "succeeded", "rolled_back", "failed"})
    assert paused["state"] == "paused", paused
    # held by the judge, saying what is missing: no data is never a pass
    assert paused["paused_reason"].startswith("held: only 0 canary loads in this step")
    assert paused["weight"] == 5 and paused["step"] == 0
    assert paused["last_analysis"]["verdict"] == "inconclusive"
    served = await edge_manifest(edge, settings, apartment)
    assert served["apartments"][apartment]["buildings"]["header"]["active_unit"] == "header@1.0.0"

    rolled = await api.post(f"/rollouts/{rollout_id}/rollback", json={"actor": "bob", "reason": "no data"})
    assert rolled.status_code == 200 and rolled.json()["state"] == "rolled_back"


async def test_pause_resume_promote_and_emergency_rollback(
    api: httpx.AsyncClient,
    edge: httpx.AsyncClient,
    rum: RumTarget,
    settings: Settings,
    temporal: Client,
    tmp_path: Path,
) -> None:
    apartment = await create_apartment(api)
    before = await edge_manifest(edge, settings, apartment)
    bundle = make_bundle(tmp_path / "b", "1.3.0")
    with rum.traffic(apartment, "header", "header", "1.3.0"):
        rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "1.3.0")
        rollout_id = await start(api, rollout_body(apartment, bundle, "1.3.0", bake_seconds=3))
        await wait_state(api, rollout_id, {"progressing"})
        paused = await api.post(f"/rollouts/{rollout_id}/pause", json={"actor": "bob", "reason": "lunch"})
        assert paused.status_code == 200, paused.text
        assert paused.json()["state"] == "paused"
        held_at = paused.json()["weight"]

        # Paused, nothing is scheduled that could move the weight (no bake timer, no
        # analysis activity): it stays until someone acts.
        assert await what_could_move(temporal, rollout_id) == []
        still = (await api.get(f"/rollouts/{rollout_id}")).json()
        assert (still["state"], still["weight"]) == ("paused", held_at)
        again = await api.post(f"/rollouts/{rollout_id}/pause", json={"actor": "bob"})
        assert again.status_code == 409 and "already paused" in again.json()["error"]["message"]

        resumed = await api.post(f"/rollouts/{rollout_id}/resume", json={"actor": "bob", "reason": "back"})
        assert resumed.status_code == 200 and resumed.json()["state"] == "progressing"

        promoted = await api.post(f"/rollouts/{rollout_id}/promote", json={"actor": "carol"})
        assert promoted.status_code == 200, promoted.text
        assert promoted.json()["weight"] > held_at

        rolled = await api.post(
            f"/rollouts/{rollout_id}/rollback", json={"actor": "dave", "reason": "pager went off"}
        )
    assert rolled.status_code == 200, rolled.text
    status = rolled.json()
    assert status["state"] == "rolled_back"
    assert "pager went off" in status["reason"] and "dave" in status["reason"]
    actions = [h["action"] for h in status["history"]]
    for action in ("start", "pause", "resume", "promote", "rollback", "restored", "rolled_back"):
        assert action in actions
    assert {h["actor"] for h in status["history"]} >= {"alice", "bob", "carol", "dave"}
    served = await edge_manifest(edge, settings, apartment)
    assert served["apartments"] == before["apartments"]

    late = await api.post(f"/rollouts/{rollout_id}/promote", json={"actor": "erin"})
    assert late.status_code == 409
    assert "ended" in late.json()["error"]["message"]
    await save_history(temporal, rollout_id, "canary_steered_by_updates")


async def test_promote_full_and_signals_from_the_temporal_ui(
    api: httpx.AsyncClient,
    edge: httpx.AsyncClient,
    rum: RumTarget,
    settings: Settings,
    temporal: Client,
    tmp_path: Path,
) -> None:
    # Signals carry plain JSON, as the Temporal UI sends them.
    apartment = await create_apartment(api)
    bundle = make_bundle(tmp_path / "b", "1.5.0")
    # Healthy traffic: without it the analysis would pause the rollout itself
    # (inconclusive) before the UI's pause arrives.
    with rum.traffic(apartment, "header", "header", "1.5.0"):
        rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "1.5.0")
        rollout_id = await start(api, rollout_body(apartment, bundle, "1.5.0", bake_seconds=300))
        await wait_state(api, rollout_id, {"progressing"})
        handle = temporal.get_workflow_handle(rollout_id)
        # A signal that makes no sense now is recorded as refused, not applied.
        await handle.signal("resume_signal", {"actor": "ui-user"})
        # (In the history, not necessarily last: it can share a workflow task with the first weight.)
        status = await wait_for(
            api, rollout_id, lambda s: any(h["action"] == "refused resume" for h in s["history"])
        )
        refused = next(h for h in status["history"] if h["action"] == "refused resume")
        assert "not paused" in refused["reason"] and status["state"] == "progressing"
        await handle.signal("pause_signal", {"actor": "ui-user", "reason": "from the UI"})
        paused = await wait_state(api, rollout_id, {"paused"})
        # anyone who reaches Temporal can sign a signal with any name: the audit says so
        assert paused["paused_reason"] == "paused by ui-user (via Temporal, actor unverified): from the UI"
        await handle.signal("promote_signal", {"actor": "ui-user", "full": True})
        final = await wait_state(api, rollout_id, {"succeeded", "rolled_back", "failed"})
    assert final["state"] == "succeeded"
    assert "promote full" in [h["action"] for h in final["history"]]
    promoted = next(h for h in final["history"] if h["action"] == "promote full")
    assert promoted["actor"] == "ui-user (via Temporal, actor unverified)"
    served = await edge_manifest(edge, settings, apartment)
    assert served["apartments"][apartment]["buildings"]["header"]["active_unit"] == "header@1.5.0"
    await save_history(temporal, rollout_id, "canary_signalled_from_the_ui")
