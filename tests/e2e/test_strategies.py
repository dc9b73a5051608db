"""Every strategy driven to its end on the real stack, with gates, hooks and history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

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
from tests.support.webhooks import webhook_receiver

pytestmark = pytest.mark.asyncio(loop_scope="session")
ENDED = {"succeeded", "rolled_back", "failed"}


def body(apartment: str, bundle: Path, version: str, strat: dict[str, Any], **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "apartment": apartment,
        "building": "header",
        "unit_id": "header",
        "version": version,
        "bundle": {"path": str(bundle)},
        "strategy": strat,
        "actor": "alice",
    }
    data.update(extra)
    return data


async def start(api: httpx.AsyncClient, request: dict[str, Any]) -> str:
    response = await api.post("/rollouts", json=request)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def manifest(
    edge: httpx.AsyncClient, settings: Settings, apartment: str, name: str = "manifest"
) -> Any:
    response = await edge.get(f"/{settings.s3_bucket}/manifests/{apartment}/{name}.json")
    assert response.status_code == 200, response.text
    return response.json()


def header(doc: dict[str, Any], apartment: str) -> dict[str, Any]:
    building: dict[str, Any] = doc["apartments"][apartment]["buildings"]["header"]
    return building


async def revision_weights(api: httpx.AsyncClient, apartment: str, revisions: list[int]) -> list[float]:
    weights = []
    for revision in revisions:
        doc = (await api.get(f"/apartments/{apartment}/revisions/{revision}")).json()
        canary = header(doc, apartment)["units"].get("header@2.0.0", {})
        if canary.get("rollout"):
            weights.append(canary["rollout"]["percentage"])
    return weights


@pytest.mark.parametrize(
    ("strat", "expected"),
    [
        ({"kind": "immediate"}, [100]),
        ({"kind": "linear", "step_percent": 50}, [50, 100]),
        ({"kind": "exponential", "start_percent": 25, "factor": 2}, [25, 50, 100]),
        ({"steps": [10, {"weight": 60, "bake_seconds": 1}, 100]}, [10, 60, 100]),
    ],
    ids=["immediate", "linear", "exponential", "canary-per-step-bake"],
)
async def test_traffic_strategies_walk_their_plan_and_promote(
    api: httpx.AsyncClient,
    edge: httpx.AsyncClient,
    rum: RumTarget,
    settings: Settings,
    tmp_path: Path,
    strat: dict[str, Any],
    expected: list[float],
) -> None:
    apartment = await create_apartment(api)
    fast = strategy(bake_seconds=1, **strat)
    fast.pop("steps") if "steps" not in strat else None
    with rum.traffic(apartment, "header", "header", "2.0.0"):
        rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "2.0.0")
        rollout_id = await start(api, body(apartment, make_bundle(tmp_path / "b", "2.0.0"), "2.0.0", fast))
        final = await wait_state(api, rollout_id, ENDED | {"paused"})
    assert final["state"] == "succeeded", (final["paused_reason"], final["reason"])
    assert final["steps"] == expected
    assert final["strategy"] == strat.get("kind", "canary")
    assert await revision_weights(api, apartment, final["revisions"]) == expected
    assert header(await manifest(edge, settings, apartment), apartment)["active_unit"] == "header@2.0.0"


async def test_blue_green_previews_then_switches_in_one_write_and_back_in_one(
    api: httpx.AsyncClient,
    edge: httpx.AsyncClient,
    rum: RumTarget,
    settings: Settings,
    temporal: Client,
    tmp_path: Path,
) -> None:
    apartment = await create_apartment(api)
    bundle = make_bundle(tmp_path / "b", "2.0.0")
    strat = strategy(kind="blue_green", preview_seconds=300, bake_seconds=300)
    strat.pop("steps")
    rollout_id = await start(api, body(apartment, bundle, "2.0.0", strat))
    status = await wait_for(api, rollout_id, lambda s: any(h["action"] == "preview" for h in s["history"]))

    # production still serves the old unit; the preview manifest serves the new one
    assert header(await manifest(edge, settings, apartment), apartment)["active_unit"] == "header@1.0.0"
    preview = await manifest(edge, settings, apartment, "preview")
    assert header(preview, apartment)["active_unit"] == "header@2.0.0"
    assert status["weight"] == 0

    switched = await api.post(
        f"/rollouts/{rollout_id}/promote", json={"actor": "carol", "reason": "looks good"}
    )
    assert switched.status_code == 200, switched.text
    assert switched.json()["weight"] == 100
    revisions_before = switched.json()["revisions"]
    live = await manifest(edge, settings, apartment)
    assert header(live, apartment)["active_unit"] == "header@2.0.0"
    assert header(live, apartment)["units"]["header@1.0.0"]["status"] == "deprecated"  # still published
    assert any(h["action"] == "switched" and "one write" in h["reason"] for h in switched.json()["history"])

    back = await api.post(f"/rollouts/{rollout_id}/rollback", json={"actor": "dave", "reason": "switch back"})
    assert back.status_code == 200 and back.json()["state"] == "rolled_back"
    assert len(back.json()["revisions"]) == len(revisions_before) + 1  # switching back is one write
    assert header(await manifest(edge, settings, apartment), apartment)["active_unit"] == "header@1.0.0"
    # the preview no longer serves the rejected build: it serves production and says so
    done = await wait_for(
        api, rollout_id, lambda s: any(h["action"] == "preview cleared" for h in s["history"])
    )
    cleared = next(h for h in done["history"] if h["action"] == "preview cleared")
    assert "no candidate: header@2.0.0 rolled back" in cleared["reason"]
    preview = await manifest(edge, settings, apartment, "preview")
    assert header(preview, apartment)["active_unit"] == "header@1.0.0"
    assert preview["change"]["reason"] == "no candidate: header@2.0.0 rolled back"
    await save_history(temporal, rollout_id, "blue_green_switched_and_back")


async def test_ab_test_reports_per_variant_and_waits_for_a_human(
    api: httpx.AsyncClient,
    edge: httpx.AsyncClient,
    rum: RumTarget,
    settings: Settings,
    temporal: Client,
    tmp_path: Path,
) -> None:
    apartment = await create_apartment(api)
    strat = strategy(kind="ab_test", split=50, duration_seconds=3)
    strat.pop("steps")
    strat.pop("bake_seconds")
    with (
        rum.traffic(apartment, "header", "header", "2.0.0", error_ratio=0.0),
        rum.traffic(apartment, "header", "header", "1.0.0", error_ratio=0.0),
    ):
        rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "2.0.0")
        rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "1.0.0")
        rollout_id = await start(api, body(apartment, make_bundle(tmp_path / "b", "2.0.0"), "2.0.0", strat))
        done = await wait_state(api, rollout_id, ENDED | {"paused"})
    assert done["state"] == "paused" and done["paused_reason"].startswith("the A/B test is complete"), done[
        "reason"
    ]
    assert done["weight"] == 50
    report = done["report"]
    assert "B=2.0.0 at 50%" in report and "A=header@1.0.0" in report and "error_rate" in report
    assert "Winner: " in report and "interval [" in report
    ab = done["ab_report"]
    assert ab["ending"] == "complete" and ab["b"]["loads"] > 0 and ab["a"]["loads"] > 0
    assert {c["name"] for c in ab["comparisons"]} == {"error_rate", "load_time"}
    assert all(
        c["verdict"] in ("A is better", "B is better", "difference not established")
        for c in ab["comparisons"]
    )
    error_check = next(c for c in done["last_analysis"]["checks"] if c["name"] == "error_rate")
    assert error_check["baseline"] is not None and error_check["value"] is not None
    served = header(await manifest(edge, settings, apartment), apartment)
    assert served["units"]["header@2.0.0"]["rollout"]["strategy"] == "ab_test"

    resumed = await api.post(f"/rollouts/{rollout_id}/resume", json={"actor": "bob"})
    assert resumed.status_code == 409 and "promote (full) or roll back" in resumed.json()["error"]["message"]
    kept = await api.post(
        f"/rollouts/{rollout_id}/promote?full=true", json={"actor": "bob", "reason": "B wins"}
    )
    assert kept.status_code == 200 and kept.json()["state"] == "succeeded"
    assert kept.json()["ab_report"]["outcome"] == "B kept: promoted by bob"
    assert "B kept: promoted by bob" in kept.json()["report"]
    await save_history(temporal, rollout_id, "ab_test_decided")


async def test_ab_test_rolled_back_early_still_reports(
    api: httpx.AsyncClient, rum: RumTarget, settings: Settings, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    strat = strategy(kind="ab_test", split=50, duration_seconds=600)
    strat.pop("steps")
    strat.pop("bake_seconds")
    with (
        rum.traffic(apartment, "header", "header", "2.0.0", error_ratio=0.0),
        rum.traffic(apartment, "header", "header", "1.0.0", error_ratio=0.0),
    ):
        rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "2.0.0")
        rollout_id = await start(api, body(apartment, make_bundle(tmp_path / "b", "2.0.0"), "2.0.0", strat))
        running = await wait_for(api, rollout_id, lambda s: s["looks"] and s["looks"][0]["looks"])
        assert running["ab_report"]["ending"] == "running"  # the API reports a test in progress
        back = await api.post(f"/rollouts/{rollout_id}/rollback", json={"actor": "dave", "reason": "stop it"})
    assert back.status_code == 200 and back.json()["state"] == "rolled_back"
    ab = back.json()["ab_report"]
    assert ab["ending"] == "stopped" and ab["outcome"] == "A kept: rolled back by dave (stop it)"
    assert back.json()["report"] and "Winner: " in back.json()["report"]


async def test_targeting_is_written_for_the_resolver(
    api: httpx.AsyncClient, edge: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    targeting = {"user_segments": ["beta"], "geo_regions": ["KR", "JP"], "feature_flags": ["new-header"]}
    request = body(apartment, make_bundle(tmp_path / "b", "2.0.0"), "2.0.0", parked_strategy())
    request["targeting"] = targeting
    rollout_id = await start(api, request)
    await wait_state(api, rollout_id, {"progressing"})
    await wait_for(api, rollout_id, lambda s: s["revisions"])
    canary = header(await manifest(edge, settings, apartment), apartment)["units"]["header@2.0.0"]
    # regions, segments and flags are lower-cased: the resolver compares them case-insensitively
    assert canary["rollout"]["criteria"] == {**targeting, "geo_regions": ["kr", "jp"]}
    who = (await api.get(f"/apartments/{apartment}/resolve", params={"user": "u-1", "region": "FR"})).json()
    assert who["header"]["reason"] == "stable" and who["header"]["excluded_by"] in ("geo_regions", None)
    assert (await api.post(f"/rollouts/{rollout_id}/rollback", json={})).status_code == 200


async def test_pre_rollout_webhook_refusal_fails_before_any_traffic(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    with webhook_receiver() as hook:
        hook.default = 500
        request = body(apartment, make_bundle(tmp_path / "b", "2.0.0"), "2.0.0", strategy())
        request["webhooks"] = [{"event": "pre_rollout", "url": hook.url + "/pre", "retries": 1}]
        final = await wait_state(api, await start(api, request), ENDED)
    assert final["state"] == "failed" and "pre-rollout webhook refused" in final["reason"]
    assert final["revisions"] == [] and len(hook.calls) == 2  # first try + one retry
    assert hook.calls[0]["json"]["event"] == "pre_rollout" and hook.calls[0]["json"]["version"] == "2.0.0"


async def test_confirm_promotion_holds_until_the_hook_answers_2xx(
    api: httpx.AsyncClient, rum: RumTarget, settings: Settings, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    with webhook_receiver() as hook, rum.traffic(apartment, "header", "header", "2.0.0"):
        rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "2.0.0")
        hook.default = 503
        request = body(apartment, make_bundle(tmp_path / "b", "2.0.0"), "2.0.0", strategy(steps=[100]))
        request["webhooks"] = [
            {"event": "confirm_promotion", "url": hook.url + "/confirm", "retries": 0},
            {"event": "post_rollout", "url": hook.url + "/post", "retries": 0},
        ]
        rollout_id = await start(api, request)
        waiting = await wait_for(api, rollout_id, lambda s: s["waiting_for"] is not None)
        assert "confirm-promotion webhook" in waiting["waiting_for"] and waiting["state"] == "progressing"
        audit = (await api.get(f"/rollouts/{rollout_id}/audit")).json()
        refusal = next(e for e in audit if e["action"] == "webhook confirm_promotion refused")
        assert hook.url + "/confirm" in refusal["reason"] and "503" in refusal["reason"]
        refused = await api.post(f"/rollouts/{rollout_id}/promote", json={"actor": "eve"})
        assert (
            refused.status_code == 409
            and "waiting for confirm-promotion" in refused.json()["error"]["message"]
        )
        hook.default = 200
        final = await wait_state(api, rollout_id, ENDED)
    assert final["state"] == "succeeded" and final["waiting_for"] is None
    assert hook.events()[-2:] == ["confirm_promotion", "post_rollout"]
    assert [c["status"] for c in hook.calls if c["path"] == "/confirm"][-1] == 200
    assert any(c["status"] == 503 for c in hook.calls)


async def test_dry_run_checks_are_reported_but_never_decide(
    api: httpx.AsyncClient, rum: RumTarget, settings: Settings, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    checks = [
        {"name": "always_bad", "query": "vector(5)", "max": 1, "dry_run": True},
        {
            "name": "loads",
            "query": 'sum(increase(skyline_unit_loads_total{apartment="{apartment}",'
            'version="{version}"}[{window}]))',
            "min": 1,
        },
    ]
    with rum.traffic(apartment, "header", "header", "2.0.0"):
        rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "2.0.0")
        request = body(
            apartment, make_bundle(tmp_path / "b", "2.0.0"), "2.0.0", strategy(steps=[100], checks=checks)
        )
        final = await wait_state(api, await start(api, request), ENDED | {"paused"})
    assert final["state"] == "succeeded", final["paused_reason"]
    by_name = {c["name"]: c for c in final["last_analysis"]["checks"]}
    assert by_name["always_bad"]["verdict"] == "fail" and by_name["always_bad"]["dry_run"]
    assert by_name["always_bad"]["value"] == 5 and by_name["always_bad"]["bound"] == 1
    assert by_name["loads"]["verdict"] == "pass" and by_name["loads"]["value"] > 1


async def test_entry_that_is_not_javascript_fails_the_smoke_gate(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    bundle = make_bundle(tmp_path / "b", "2.0.0")
    (bundle / "index.js").write_text("<html><body>404 Not Found</body></html>\n")
    final = await wait_state(api, await start(api, body(apartment, bundle, "2.0.0", strategy())), ENDED)
    assert final["state"] == "failed" and "smoke: the entry contains markup" in final["reason"]
    assert final["revisions"] == []


async def test_undo_to_an_earlier_revision_after_the_rollout(
    api: httpx.AsyncClient, edge: httpx.AsyncClient, rum: RumTarget, settings: Settings, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    base = (await api.get(f"/apartments/{apartment}/manifest")).json()
    request = body(apartment, make_bundle(tmp_path / "b", "2.0.0"), "2.0.0", parked_strategy())
    rollout_id = await start(api, request)
    await wait_for(api, rollout_id, lambda s: s["revisions"])
    busy = await api.post(f"/apartments/{apartment}/undo", json={"to_revision": 1, "actor": "ops"})
    assert busy.status_code == 409 and rollout_id in busy.json()["error"]["message"]
    promoted = await api.post(f"/rollouts/{rollout_id}/promote?full=true", json={"actor": "ops"})
    assert promoted.json()["state"] == "succeeded"

    changes = (await api.get(f"/apartments/{apartment}/diff", params={"from": 1})).json()["changes"]
    paths = {c["path"]: c for c in changes}
    active = f"apartments.{apartment}.buildings.header.active_unit"
    assert paths[active]["old"] == "header@1.0.0" and paths[active]["new"] == "header@2.0.0"

    undone = await api.post(
        f"/apartments/{apartment}/undo", json={"to_revision": 1, "actor": "ops", "reason": "x"}
    )
    assert undone.status_code == 200, undone.text
    assert undone.json()["restored_from"] == 1
    served = await manifest(edge, settings, apartment)
    assert served["version"] == str(undone.json()["revision"])
    assert served["apartments"] == base["apartments"]
    assert (await api.get(f"/apartments/{apartment}/last-known-good")).json()["version"] == served["version"]
    missing = await api.post(f"/apartments/{apartment}/undo", json={"to_revision": 99})
    assert missing.status_code == 404 and "no revision 99" in missing.json()["error"]["message"]
