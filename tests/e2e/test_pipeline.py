"""A release pipeline on the real stack: staging (soak, verify, approval), then production as a fleet."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from adapters import search_attributes as search
from skyline.settings import Settings
from tests.cli.conftest import Cli
from tests.support.histories import save_history
from tests.support.rum import RumTarget
from tests.support.scenario import create_apartment, make_bundle, strategy
from tests.support.search import attributes_of, labels
from tests.support.webhooks import webhook_receiver
from tests.support.windows import freeze_until

pytestmark = pytest.mark.asyncio(loop_scope="session")
ENDED = {"succeeded", "failed", "rolled_back"}
PIPELINE = "pipeline.header.header"


async def wait_pipeline(api: httpx.AsyncClient, predicate: Any, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await api.get(f"/pipelines/{PIPELINE}")
        if response.status_code == 200:
            last = response.json()
            if predicate(last):
                return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"the pipeline never got there; last: {json.dumps(last)[:2000]}")


async def active_unit(edge: httpx.AsyncClient, settings: Settings, apartment: str) -> str:
    doc = (await edge.get(f"/{settings.s3_bucket}/manifests/{apartment}/manifest.json")).json()
    return str(doc["apartments"][apartment]["buildings"]["header"]["active_unit"])


def spec(bundle: Path, staging: str, production: list[str], verify_url: str) -> dict[str, Any]:
    return {
        "building": "header",
        "unit_id": "header",
        "version": "2.0.0",
        "bundle": {"path": str(bundle)},
        "strategy": strategy(steps=[100], bake_seconds=1),
        "actor": "alice",
        "stages": [
            {
                "name": "staging",
                "apartments": [staging],
                "soak_seconds": 2,
                "verify": [{"url": verify_url, "retries": 0}],
                "approval": {"role": "deployer", "not_starter": True, "expires_seconds": 600},
            },
            {"name": "production", "apartments": production, "batch_size": 2},
        ],
    }


async def test_one_command_takes_a_version_through_staging_and_an_approval_into_production(
    api: httpx.AsyncClient,
    edge: httpx.AsyncClient,
    rum: RumTarget,
    settings: Settings,
    temporal: Client,
    tmp_path: Path,
) -> None:
    staging, *production = apartments = [await create_apartment(api) for _ in range(3)]
    cli = Cli(f"http://{settings.api_host}:{settings.api_port}")
    with contextlib.ExitStack() as stack, webhook_receiver() as hook:
        for apt in apartments:
            stack.enter_context(rum.traffic(apt, "header", "header", "2.0.0"))
        for apt in apartments:
            rum.wait_visible(settings.prometheus_url, apt, "header", "header", "2.0.0")
        path = tmp_path / "release.json"
        path.write_text(json.dumps(spec(make_bundle(tmp_path / "b", "2.0.0"), staging, production, hook.url)))
        # What CI runs on a version tag: one command, exit code as docs/cli.md says.
        run = asyncio.create_task(
            asyncio.to_thread(cli, "pipeline", "start", "--spec", str(path), "--wait", "--interval", "0.5")
        )
        waiting = await wait_pipeline(api, lambda s: s["stages"][0]["state"] == "awaiting_approval")
        assert waiting["stages"][0]["verified"] == [f"{hook.url} answered 2xx"]
        assert hook.events() == ["pipeline_verify"]
        assert hook.calls[0]["json"]["stage"] == "staging"
        assert hook.calls[0]["json"]["version"] == "2.0.0"
        assert await active_unit(edge, settings, staging) == "header@2.0.0"
        assert [await active_unit(edge, settings, a) for a in production] == ["header@1.0.0"] * 2
        # the starter may not approve this stage
        refused = await api.post(f"/pipelines/{PIPELINE}/approve", json={"actor": "alice"})
        assert refused.status_code == 409, refused.text
        assert "started this pipeline" in refused.json()["error"]["message"]
        approved = await api.post(f"/pipelines/{PIPELINE}/approve", json={"actor": "bob", "reason": "e2e ok"})
        assert approved.status_code == 200, approved.text
        result = await asyncio.wait_for(run, timeout=300)
    assert result.exit_code == 0, result.output
    final = (await api.get(f"/pipelines/{PIPELINE}")).json()
    assert final["state"] == "succeeded"
    assert [s["state"] for s in final["stages"]] == ["succeeded", "succeeded"]
    assert final["stages"][0]["approvals"][0]["actor"] == "bob"
    assert final["stages"][1]["kind"] == "fleet"
    assert [await active_unit(edge, settings, a) for a in apartments] == ["header@2.0.0"] * 3
    shown = cli("pipeline", "get", "header/header")
    assert shown.exit_code == 0 and "approved by bob" in shown.stdout
    # The Temporal UI's list shows the pipeline and its stages (issue 26): the pipeline, the
    # staging rollout, the production fleet and the fleet's rollouts each carry the unit, the
    # version and their own end state, and the rollouts their apartment and strategy.
    staging_rollout = final["stages"][0]["child_id"]
    production_fleet = final["stages"][1]["child_id"]
    production_rollouts = {apt: f"rollout.{apt}.header" for apt in production}
    listed = await attributes_of(
        temporal,
        [PIPELINE, staging_rollout, production_fleet, *production_rollouts.values()],
        lambda found: all(attrs.get(search.STATE) == "succeeded" for attrs in found.values()),
    )
    assert labels(listed[PIPELINE]) == ("header", "2.0.0", None, "succeeded")
    for workflow_id in (staging_rollout, production_fleet, *production_rollouts.values()):
        assert labels(listed[workflow_id]) == ("header", "2.0.0", "canary", "succeeded"), workflow_id
    assert listed[staging_rollout].get(search.APARTMENT) == staging
    for apt, workflow_id in production_rollouts.items():
        assert listed[workflow_id].get(search.APARTMENT) == apt
    # the filter docs/operations.md gives lists the whole release (other tests' runs of the
    # same version may list too)
    query = "SkylineUnit = 'header' AND SkylineVersion = '2.0.0'"
    release = {row.id async for row in temporal.list_workflows(query)}
    assert {PIPELINE, staging_rollout, production_fleet, *production_rollouts.values()} <= release
    # the shapes with search attributes given to children and kept up to date (workflows/indexing.py)
    await save_history(temporal, PIPELINE, "pipeline_indexed_with_its_children")
    await save_history(temporal, production_fleet, "fleet_indexed_with_its_children")


async def test_a_failed_verify_stops_the_line_and_nothing_reaches_production(
    api: httpx.AsyncClient, edge: httpx.AsyncClient, rum: RumTarget, settings: Settings, tmp_path: Path
) -> None:
    staging, *production = [await create_apartment(api) for _ in range(3)]
    cli = Cli(f"http://{settings.api_host}:{settings.api_port}")
    with rum.traffic(staging, "header", "header", "2.0.0"), webhook_receiver() as hook:
        rum.wait_visible(settings.prometheus_url, staging, "header", "header", "2.0.0")
        hook.default = 500
        path = tmp_path / "release.json"
        path.write_text(json.dumps(spec(make_bundle(tmp_path / "b", "2.0.0"), staging, production, hook.url)))
        result = await asyncio.to_thread(
            cli, "pipeline", "start", "--spec", str(path), "--wait", "--interval", "0.5"
        )
    assert result.exit_code == 3, result.output  # docs/cli.md: failed or rolled back
    final = (await api.get(f"/pipelines/{PIPELINE}")).json()
    assert final["state"] == "failed"
    assert final["stages"][0]["state"] == "failed" and "answered 500" in final["stages"][0]["reason"]
    assert final["stages"][1]["state"] == "skipped"
    assert [await active_unit(edge, settings, a) for a in production] == ["header@1.0.0"] * 2
    for apartment in production:  # the production stage never started a rollout there
        assert (await api.get(f"/rollouts/rollout.{apartment}.header")).status_code == 404


async def test_bad_pipelines_are_refused_in_the_error_shape(api: httpx.AsyncClient, tmp_path: Path) -> None:
    staging = await create_apartment(api)
    bundle = make_bundle(tmp_path / "b", "2.0.0")
    twice = spec(bundle, staging, [staging], "http://127.0.0.2:9/verify")
    answer = await api.post("/pipelines", json=twice)
    assert answer.status_code == 422
    assert "in two stages" in answer.json()["error"]["message"]
    unknown = spec(bundle, staging, ["no-such-apartment"], "http://127.0.0.2:9/verify")
    answer = await api.post("/pipelines", json=unknown)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "unknown_target"
    assert answer.json()["error"]["field"] == "stages.1.apartments"
    inside = spec(bundle, staging, ["other"], "http://127.0.0.1:9/verify")  # the stack's own loopback
    answer = await api.post("/pipelines", json=inside)
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "forbidden_destination"
    assert answer.json()["error"]["field"] == "stages.0.verify.0.url"
    frozen, _ = freeze_until(datetime.now(UTC), hours=3)
    freeze = frozen["freeze"][0]
    for bad, field, words in (
        ({**freeze, "timezone": "Mars/Olympus"}, "stages.0.window.freeze.0.timezone", "unknown time zone"),
        ({**freeze, "end": "9:00"}, "stages.0.window.freeze.0.end", "pattern"),
    ):
        windowed = spec(bundle, staging, ["other"], "http://127.0.0.2:9/verify")
        windowed["stages"][0]["window"] = {"freeze": [bad]}
        answer = await api.post("/pipelines", json=windowed)
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert error["code"] == "invalid_request" and error["field"] == field, error
        assert words in error["message"], error
    never = spec(bundle, staging, ["other"], "http://127.0.0.2:9/verify")
    never["stages"][1]["window"] = {"release": [{"days": [], "start": "09:00", "end": "17:00"}]}
    answer = await api.post("/pipelines", json=never)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "window_never_opens" and error["field"] == "stages.1.window", error
    assert "no window opens in the next 14 days" in error["message"]
    missing = await api.post("/pipelines/pipeline.nope.nope/approve", json={})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def test_a_stage_behind_a_freeze_waits_and_the_cli_says_why(
    api: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    staging, production = [await create_apartment(api) for _ in range(2)]
    cli = Cli(f"http://{settings.api_host}:{settings.api_port}")
    window, opens = freeze_until(datetime.now(UTC), hours=3)
    body = spec(make_bundle(tmp_path / "b", "2.0.0"), staging, [production], "http://127.0.0.2:9/verify")
    body["stages"][0] = {"name": "staging", "apartments": [staging], "window": window}
    created = await api.post("/pipelines", json=body)
    assert created.status_code == 201, created.text
    waiting = await wait_pipeline(api, lambda s: s["stages"][0]["waiting_for"] is not None, timeout=60)
    reason = waiting["stages"][0]["waiting_for"]
    assert waiting["stages"][0]["state"] == "pending" and waiting["state"] == "progressing"
    assert reason.startswith("release freeze (") and f"next opens {opens.isoformat()}" in reason
    assert any(h["action"] == "window closed" for h in waiting["history"])
    shown = cli("pipeline", "get", "header/header")
    assert shown.exit_code == 0, shown.output
    assert "waiting for release freeze (" in " ".join(shown.stdout.split())
    promoted = await api.post(f"/pipelines/{PIPELINE}/promote", json={"actor": "bob"})
    assert promoted.status_code == 409, promoted.text
    assert "a release window is never skipped" in promoted.json()["error"]["message"]
    stopped = await api.post(f"/pipelines/{PIPELINE}/rollback", json={"actor": "bob", "reason": "not today"})
    assert stopped.status_code == 200, stopped.text
    final = await wait_pipeline(api, lambda s: s["state"] in ENDED, timeout=60)
    assert final["state"] == "rolled_back"
    assert [s["state"] for s in final["stages"]] == ["skipped", "skipped"]
    for apartment in (staging, production):  # no stage started a rollout
        assert (await api.get(f"/rollouts/rollout.{apartment}.header")).status_code == 404
