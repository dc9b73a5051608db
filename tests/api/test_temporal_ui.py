"""What the Temporal UI shows: search attributes, summaries, details; and the visibility-backed list."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from adapters import search_attributes as search
from skyline.contracts import ROLLOUT_WORKFLOW
from skyline.rollout import RolloutInput, RolloutSpec, rollout_id_for
from skyline.settings import Settings
from tests.support.scenario import create_apartment, make_bundle, parked_strategy, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_search_attributes_summary_and_details_are_visible(
    api: httpx.AsyncClient, temporal: Client, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    body = {
        "apartment": apartment,
        "building": "header",
        "unit_id": "header",
        "version": "2.1.0",
        "bundle": {"path": str(make_bundle(tmp_path / "b", "2.1.0"))},
        "strategy": parked_strategy(),
        "actor": "alice",
        "reason": "new nav",
    }
    started = await api.post("/rollouts", json=body)
    assert started.status_code == 201, started.text
    rollout_id = started.json()["id"]
    await wait_for(api, rollout_id, lambda s: s["revisions"] and s["state"] == "progressing")
    handle = temporal.get_workflow_handle(rollout_id)

    # Upserts land in visibility a moment after the workflow task: poll for them.
    deadline = time.monotonic() + 30
    attrs: Any = None
    while time.monotonic() < deadline:
        described = await handle.describe()
        attrs = described.typed_search_attributes
        if attrs.get(search.WEIGHT) == 5.0:
            break
        await asyncio.sleep(0.1)
    assert attrs.get(search.APARTMENT) == apartment and attrs.get(search.BUILDING) == "header"
    assert attrs.get(search.VERSION) == "2.1.0" and attrs.get(search.STATE) == "progressing"
    assert attrs.get(search.UNIT) == "header" and attrs.get(search.STRATEGY) == "canary"
    assert attrs.get(search.WEIGHT) == 5.0
    assert await described.static_summary() == f"header@2.1.0 → {apartment}/header (canary)"
    assert "alice" in (await described.static_details() or "")

    metadata = await handle.query("__temporal_workflow_metadata")
    details = metadata["currentDetails"] if isinstance(metadata, dict) else metadata.current_details
    assert f"header@2.1.0 → {apartment}/header" in details and "weight **5%**" in details

    found = [
        wf.id
        async for wf in temporal.list_workflows(
            f"{search.APARTMENT.name} = '{apartment}' AND {search.STATE.name} = 'progressing'"
        )
    ]
    assert found == [rollout_id]

    listed = await api.get("/rollouts", params={"apartment": apartment, "state": "progressing"})
    assert listed.status_code == 200
    rows = listed.json()
    assert [r["id"] for r in rows] == [rollout_id]
    assert (
        rows[0]["weight"] == 5 and rows[0]["version"] == "2.1.0" and rows[0]["workflow_status"] == "running"
    )
    assert (await api.get("/rollouts", params={"apartment": apartment, "state": "succeeded"})).json() == []
    bad = await api.get("/rollouts", params={"apartment": "x' OR '1'='1"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "apartment"
    bad_state = await api.get("/rollouts", params={"state": "exploded"})
    assert bad_state.status_code == 422

    await api.post(f"/rollouts/{rollout_id}/rollback", json={"actor": "alice"})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if (await handle.describe()).typed_search_attributes.get(search.STATE) == "rolled_back":
            break
        await asyncio.sleep(0.1)
    assert (await handle.describe()).typed_search_attributes.get(search.STATE) == "rolled_back"


async def test_resolver_says_which_unit_each_building_serves(api: httpx.AsyncClient, tmp_path: Path) -> None:
    apartment = await create_apartment(api)
    body = {
        "apartment": apartment,
        "building": "header",
        "unit_id": "header",
        "version": "2.2.0",
        "bundle": {"path": str(make_bundle(tmp_path / "b", "2.2.0"))},
        "strategy": parked_strategy(steps=[50, 100]),
    }
    rollout_id = (await api.post("/rollouts", json=body)).json()["id"]
    await wait_for(api, rollout_id, lambda s: s["revisions"])
    seen = {}
    for n in range(40):
        answer = await api.get(f"/apartments/{apartment}/resolve", params={"user": f"user-{n}"})
        assert answer.status_code == 200, answer.text
        header = answer.json()["header"]
        seen[header["unit"]["id"]] = header["reason"]
        assert answer.json()["main"]["unit"] is None
    assert set(seen) == {"header@1.0.0", "header@2.2.0"}  # both halves of a 50 % split
    missing = await api.get(f"/apartments/{apartment}/resolve")
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "user"
    unknown = await api.get("/apartments/nope/resolve", params={"user": "u"})
    assert unknown.status_code == 404
    await api.post(f"/rollouts/{rollout_id}/rollback", json={})


async def test_a_rollout_started_without_unit_and_strategy_gets_them_with_its_next_state(
    api: httpx.AsyncClient, temporal: Client, settings: Settings, tmp_path: Path
) -> None:
    """Rollouts the API started before it set SkylineUnit and SkylineStrategy (started here as it
    started them then) carry them once their state changes, so the UI's list reads alike."""
    apartment = await create_apartment(api)
    spec = RolloutSpec.model_validate(
        {
            "apartment": apartment,
            "building": "header",
            "unit_id": "header",
            "version": "2.3.0",
            "bundle": {"path": str(make_bundle(tmp_path / "b", "2.3.0"))},
            "strategy": parked_strategy(),
            "actor": "alice",
            "max_duration_seconds": settings.rollout_max_duration_seconds,
        }
    )
    rollout_id = rollout_id_for(apartment, "header")
    handle = await temporal.start_workflow(
        ROLLOUT_WORKFLOW,
        RolloutInput(rollout_id=rollout_id, spec=spec),
        id=rollout_id,
        task_queue=settings.task_queue,
        search_attributes=search.initial(apartment, "header", "2.3.0"),
    )
    assert (await handle.describe()).typed_search_attributes.get(search.UNIT) is None
    deadline = time.monotonic() + 30
    attrs: Any = None
    while time.monotonic() < deadline:
        attrs = (await handle.describe()).typed_search_attributes
        if attrs.get(search.UNIT) is not None:
            break
        await asyncio.sleep(0.1)
    assert attrs.get(search.UNIT) == "header" and attrs.get(search.STRATEGY) == "canary"
    await api.post(f"/rollouts/{rollout_id}/rollback", json={})
