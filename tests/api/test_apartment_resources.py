"""Apartments as resources: GET one, add / rename / remove buildings, edit its name (issue 24).

Against the session stack's real API, Temporal worker and S3: every structural write is a
manifest revision with its actor and reason, `If-Match` guards it, and a building that holds
units or has a rollout running is refused with 409 and the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.scenario import create_apartment, make_bundle, parked_strategy, wait_state

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def head(api: httpx.AsyncClient, apartment: str) -> dict[str, Any]:
    response = await api.get(f"/apartments/{apartment}/manifest")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    assert body["status"] == status and body["code"] == code, body
    return body


async def test_get_one_apartment_with_its_revision_as_etag(api: httpx.AsyncClient) -> None:
    apartment = await create_apartment(api)
    response = await api.get(f"/apartments/{apartment}")
    assert response.status_code == 200, response.text
    view = response.json()
    assert response.headers["etag"] == '"1"'
    assert (view["id"], view["name"], view["revision"]) == (apartment, "Shop", 1)
    assert view["change"]["actor"] == "tests"
    buildings = {b["id"]: b for b in view["buildings"]}
    assert [b["id"] for b in view["buildings"]] == ["header", "main", "footer"]  # manifest order
    assert buildings["header"]["active_unit"] == "header@1.0.0"
    assert buildings["header"]["active_version"] == "1.0.0"
    assert buildings["header"]["units"] == ["header@1.0.0"] and buildings["header"]["canary"] is None
    assert buildings["main"]["active_unit"] is None and buildings["main"]["units"] == []
    missing = error(await api.get("/apartments/no-such-apartment"), 404, "not_found")
    assert "no apartment 'no-such-apartment'" in missing["message"]


async def test_add_a_building_to_an_existing_apartment_then_roll_out_to_it(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    refused = await api.post(
        "/rollouts",
        json={
            "apartment": apartment, "building": "checkout", "unit_id": "checkout", "version": "1.0.0",
            "bundle": {"path": str(make_bundle(tmp_path / "b", "1.0.0"))}, "strategy": parked_strategy(),
        },
    )  # fmt: skip
    assert error(refused, 422, "unknown_target")["message"].startswith("building 'checkout' does not exist")

    added = await api.post(
        f"/apartments/{apartment}/buildings",
        json={
            "id": "checkout",
            "name": "Checkout",
            "category": "main",
            "actor": "erin",
            "reason": "new team",
        },
        headers={"If-Match": '"1"'},
    )
    assert added.status_code == 201, added.text
    assert added.headers["etag"] == '"2"'
    view = added.json()
    assert view["revision"] == 2 and view["buildings"][-1]["id"] == "checkout"
    # the revision and its audit: who, why, what; the diff names the added building
    revision = (await api.get(f"/apartments/{apartment}/revisions/2")).json()
    assert revision["change"]["actor"] == "erin"
    assert revision["change"]["reason"] == "add building checkout: new team"
    assert revision["change"]["parent"] == "1"
    assert revision["apartments"][apartment]["buildings"]["checkout"] == {
        "name": "Checkout", "category": "main", "units": {}, "routing": {},
    }  # fmt: skip
    changes = (await api.get(f"/apartments/{apartment}/diff", params={"from": 1})).json()["changes"]
    assert [(c["path"], c["op"]) for c in changes] == [
        (f"apartments.{apartment}.buildings.checkout", "added")
    ]

    body = {
        "apartment": apartment, "building": "checkout", "unit_id": "checkout", "version": "1.0.0",
        "bundle": {"path": str(make_bundle(tmp_path / "c", "1.0.0"))}, "strategy": parked_strategy(),
        "actor": "erin", "reason": "first checkout",
    }  # fmt: skip
    started = await api.post("/rollouts", json=body)
    assert started.status_code == 201, started.text
    rollout_id = started.json()["id"]
    # While it runs (publishing, then at 5 %), the building can be neither removed nor renamed.
    for attempt in (
        api.delete(f"/apartments/{apartment}/buildings/checkout"),
        api.patch(f"/apartments/{apartment}/buildings/checkout", json={"name": "Pay"}),
    ):
        refusal = error(await attempt, 409, "rollout_running")
        assert rollout_id in refusal["message"]
    await wait_state(api, rollout_id, {"progressing"})
    canary = next(
        b for b in (await api.get(f"/apartments/{apartment}")).json()["buildings"] if b["id"] == "checkout"
    )
    assert canary["canary"] == {"unit": "checkout@1.0.0", "version": "1.0.0", "percentage": 5.0}
    for attempt in (
        api.delete(f"/apartments/{apartment}/buildings/checkout"),
        api.patch(f"/apartments/{apartment}/buildings/checkout", json={"id": "pay"}),
    ):
        error(await attempt, 409, "rollout_running")
    # Another building of the same apartment stays editable meanwhile, and the write composes
    # with the rollout's: both survive.
    renamed = await api.patch(f"/apartments/{apartment}/buildings/main", json={"name": "Catalogue"})
    assert renamed.status_code == 200, renamed.text

    promoted = await api.post(
        f"/rollouts/{rollout_id}/promote", params={"full": "true"}, json={"actor": "erin"}
    )
    assert promoted.status_code == 200, promoted.text
    await wait_state(api, rollout_id, {"succeeded"})
    manifest = await head(api, apartment)
    buildings = manifest["apartments"][apartment]["buildings"]
    assert buildings["checkout"]["active_unit"] == "checkout@1.0.0"
    assert buildings["main"]["name"] == "Catalogue"
    # Shipped to: its id is now where shells mount it, so it stays.
    kept = error(await api.delete(f"/apartments/{apartment}/buildings/checkout"), 409, "building_not_empty")
    assert "holds units (checkout@1.0.0 active)" in kept["message"]
    error(
        await api.patch(f"/apartments/{apartment}/buildings/checkout", json={"id": "pay"}),
        409,
        "building_not_empty",
    )
    assert await head(api, apartment) == manifest


async def test_remove_a_building_that_holds_units_is_refused_and_an_empty_one_goes(
    api: httpx.AsyncClient,
) -> None:
    apartment = await create_apartment(api)
    before = await head(api, apartment)
    refusal = error(await api.delete(f"/apartments/{apartment}/buildings/header"), 409, "building_not_empty")
    assert "'header' holds units (header@1.0.0 active)" in refusal["message"]
    assert await head(api, apartment) == before

    gone = await api.delete(
        f"/apartments/{apartment}/buildings/footer", params={"actor": "finn", "reason": "no footer here"}
    )
    assert gone.status_code == 200, gone.text
    assert [b["id"] for b in gone.json()["buildings"]] == ["header", "main"]
    change = (await head(api, apartment))["change"]
    assert (change["actor"], change["reason"]) == ("finn", "remove building footer: no footer here")
    error(await api.delete(f"/apartments/{apartment}/buildings/footer"), 404, "not_found")


async def test_an_if_match_that_is_not_the_head_is_412_and_changes_nothing(api: httpx.AsyncClient) -> None:
    apartment = await create_apartment(api)
    renamed = await api.patch(
        f"/apartments/{apartment}", json={"name": "Shop EU"}, headers={"If-Match": '"1"'}
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "Shop EU", renamed.text
    assert renamed.headers["etag"] == '"2"'
    before = await head(api, apartment)
    revisions = (await api.get(f"/apartments/{apartment}/revisions")).json()["revisions"]
    stale = {"If-Match": '"1"'}  # read before the rename
    attempts = [
        api.patch(f"/apartments/{apartment}", json={"name": "Shop US"}, headers=stale),
        api.post(
            f"/apartments/{apartment}/buildings",
            json={"id": "x", "name": "X", "category": "main"},
            headers=stale,
        ),
        api.patch(f"/apartments/{apartment}/buildings/main", json={"name": "M"}, headers=stale),
        api.delete(f"/apartments/{apartment}/buildings/footer", headers=stale),
    ]
    for attempt in attempts:
        refusal = error(await attempt, 412, "precondition_failed")
        assert refusal["field"] == "If-Match" and "at revision 2, not 1" in refusal["message"]
    assert await head(api, apartment) == before
    assert (await api.get(f"/apartments/{apartment}/revisions")).json()["revisions"] == revisions
    # `*` and no header at all: write whatever the head is
    star = await api.patch(
        f"/apartments/{apartment}", json={"description": "EU shop"}, headers={"If-Match": "*"}
    )
    assert star.status_code == 200 and star.json()["revision"] == 3, star.text
    view = (await api.get(f"/apartments/{apartment}")).json()
    assert (view["name"], view["description"]) == ("Shop EU", "EU shop")
    assert view["change"]["reason"] == "edit apartment description"


async def test_rename_a_building_name_or_empty_id(api: httpx.AsyncClient) -> None:
    apartment = await create_apartment(api)
    named = await api.patch(f"/apartments/{apartment}/buildings/header", json={"name": "Top bar"})
    assert named.status_code == 200, named.text
    header = next(b for b in named.json()["buildings"] if b["id"] == "header")
    assert header["name"] == "Top bar" and header["active_unit"] == "header@1.0.0"
    moved = await api.patch(
        f"/apartments/{apartment}/buildings/footer",
        json={"id": "bottom", "name": "Bottom", "reason": "naming"},
    )
    assert moved.status_code == 200, moved.text
    assert [b["id"] for b in moved.json()["buildings"]] == ["header", "main", "bottom"]
    reason = (await head(api, apartment))["change"]["reason"]
    assert reason == "rename building footer: id to bottom, name to 'Bottom': naming"
    error(
        await api.patch(f"/apartments/{apartment}/buildings/main", json={"id": "header"}),
        409,
        "building_exists",
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "field"),
    [
        ("POST", "buildings", {"id": "Not A Slug", "name": "X", "category": "main"}, {}, 422, "id"),
        ("POST", "buildings", {"id": "x", "name": "X", "category": "aside"}, {}, 422, "category"),
        ("POST", "buildings", {"id": "x", "name": "", "category": "main"}, {}, 422, "name"),
        ("POST", "buildings", {"id": "x", "name": "X", "category": "main", "units": {}}, {}, 422, "units"),
        ("POST", "buildings", {"id": "header", "name": "H", "category": "header"}, {}, 409, None),
        (
            "POST",
            "buildings",
            {"id": "x", "name": "X", "category": "main"},
            {"If-Match": 'W/"1"'},
            422,
            "If-Match",
        ),
        (
            "POST",
            "buildings",
            {"id": "x", "name": "X", "category": "main"},
            {"If-Match": '"1", "2"'},
            422,
            "If-Match",
        ),
        ("PATCH", "buildings/main", {}, {}, 422, "body"),
        ("PATCH", "buildings/main", {"id": "../x"}, {}, 422, "id"),
        ("PATCH", "buildings/nope", {"name": "N"}, {}, 404, "building"),
        ("PATCH", "", {}, {}, 422, "body"),
        ("PATCH", "", {"name": "x" * 201}, {}, 422, "name"),
    ],
)
async def test_bad_input_is_a_clear_4xx_and_writes_nothing(
    api: httpx.AsyncClient,
    method: str,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
    status: int,
    field: str | None,
) -> None:
    apartment = await create_apartment(api)
    url = f"/apartments/{apartment}/{path}".rstrip("/")
    response = await api.request(method, url, json=body, headers=headers)
    assert response.status_code == status, response.text
    problem = response.json()["error"]
    assert problem["status"] == status and problem["message"]
    assert problem.get("field") == field, problem
    assert (await head(api, apartment))["version"] == "1"
    unknown = await api.request(method, f"/apartments/no-such-apartment/{path}".rstrip("/"), json=body)
    assert unknown.status_code in (404, 422), unknown.text
