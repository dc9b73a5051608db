"""`skyline apartment …` against the live API: create, list, get, add / rename / remove buildings.

The exit codes are the documented ones (docs/cli.md): 0 ok, 1 the API refused (409, 412,
404, 422, with its message and field on stderr, its error body on stdout with -o json),
2 usage, 4 no API.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from stack.processes import free_port
from tests.cli.conftest import Cli, refused
from tests.support.scenario import make_bundle, unique, wait_state

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_create_list_get_then_add_a_building_and_roll_out_to_it(
    cli: Cli, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    apartment = unique("shop")
    created = cli.json(
        "apartment", "create", apartment, "--name", "Shop", "-b", "header:header",
        "-b", "main:main:Catalogue", "-r", "first shell", "--actor", "alice",
    )  # fmt: skip
    assert created["version"] == "1" and created["change"]["actor"] == "alice"
    buildings = created["apartments"][apartment]["buildings"]
    assert buildings == {
        "header": {"name": "Header", "category": "header", "units": {}, "routing": {}},
        "main": {"name": "Catalogue", "category": "main", "units": {}, "routing": {}},
    }
    human = cli("apartment", "create", unique("shop"), "-b", "header:header")
    assert human.exit_code == 0 and "(revision 1): buildings header" in human.stdout

    again = cli("--output", "json", "apartment", "create", apartment, "-b", "header:header")
    assert again.exit_code == 1 and json.loads(again.stdout)["error"]["code"] == "apartment_exists"
    assert "409 apartment_exists" in again.stderr

    assert {"id": apartment, "name": "Shop", "revision": 1, "buildings": ["header", "main"]} in cli.json(
        "apartment", "list"
    )
    assert apartment in cli("apartment", "list").stdout
    view = cli.json("apartment", "get", apartment)
    assert view == cli.json("apartment", "get", "-a", apartment)
    assert (view["revision"], [b["id"] for b in view["buildings"]]) == (1, ["header", "main"])
    table = cli("apartment", "get", "-a", apartment)
    assert table.exit_code == 0 and "Catalogue" in table.stdout and "first shell" in table.stdout

    added = cli.json(
        "apartment", "add-building", "checkout", "-a", apartment, "-c", "main", "--name", "Checkout",
        "--if-revision", "1", "-r", "new team", "--actor", "erin",
    )  # fmt: skip
    assert added["revision"] == 2 and added["buildings"][-1]["id"] == "checkout"
    assert added["change"]["reason"] == "add building checkout: new team"

    bundle = make_bundle(tmp_path / "checkout", "1.0.0")
    started = cli.json(
        "rollout", "start", "-a", apartment, "-b", "checkout", "-u", "checkout", "-V", "1.0.0",
        "--bundle-dir", str(bundle), "--steps", "5,100", "--bake", "600", "--interval", "60",
        "--no-confirm-first-unit",
    )  # fmt: skip
    rollout_id = started["id"]
    await wait_state(api, rollout_id, {"progressing"})
    shown = cli.json("apartment", "get", apartment)["buildings"][-1]
    assert shown["canary"] == {"unit": "checkout@1.0.0", "version": "1.0.0", "percentage": 5.0}

    busy = cli("--output", "json", "apartment", "remove-building", "checkout", "-a", apartment)
    assert busy.exit_code == 1 and json.loads(busy.stdout)["error"]["code"] == "rollout_running"
    assert rollout_id in busy.stderr
    refused(
        cli("apartment", "rename-building", "checkout", "-a", apartment, "--name", "Pay"),
        "409 rollout_running",
    )

    # Rolled back, the first unit is gone from the building again: nothing shipped, it may go.
    assert cli.json("rollout", "rollback", rollout_id, "-r", "not yet")["state"] == "rolled_back"
    assert cli.json("apartment", "get", apartment)["buildings"][-1]["units"] == []
    gone = cli.json("apartment", "remove-building", "checkout", "-a", apartment, "-r", "postponed")
    assert [b["id"] for b in gone["buildings"]] == ["header", "main"]


async def test_refusals_exit_1_and_leave_the_manifest_as_it_was(cli: Cli, api: httpx.AsyncClient) -> None:
    apartment = unique("shop")
    cli.json("apartment", "create", apartment, "-b", "header:header", "-b", "footer:footer")
    renamed = cli.json("apartment", "rename", "-a", apartment, "--name", "Shop EU", "--if-revision", "1")
    assert (renamed["name"], renamed["revision"]) == ("Shop EU", 2)
    before = (await api.get(f"/apartments/{apartment}/manifest")).json()

    stale = cli(
        "--output", "json", "apartment", "remove-building", "footer", "-a", apartment, "--if-revision", "1"
    )
    assert stale.exit_code == 1, stale.output
    assert json.loads(stale.stdout)["error"] == {
        "status": 412,
        "code": "precondition_failed",
        "message": json.loads(stale.stdout)["error"]["message"],
        "field": "If-Match",
    }
    assert "at revision 2, not 1" in stale.stderr
    refused(cli("apartment", "rename", "-a", apartment, "--name", "X", "--if-revision", "1"), "412")
    refused(
        cli("apartment", "add-building", "footer", "-a", apartment, "-c", "footer"), "409 building_exists"
    )
    refused(cli("apartment", "remove-building", "nope", "-a", apartment), "404", "field: building")
    refused(
        cli("apartment", "rename-building", "footer", "-a", apartment, "--id", "Bad Id"), "422", "field: id"
    )
    refused(cli("apartment", "get", "no-such-apartment"), "404", "no apartment 'no-such-apartment'")
    assert (await api.get(f"/apartments/{apartment}/manifest")).json() == before

    moved = cli.json(
        "apartment", "rename-building", "footer", "-a", apartment, "--id", "bottom", "--name", "Bottom"
    )
    assert [b["id"] for b in moved["buildings"]] == ["header", "bottom"]


async def test_usage_errors_exit_2_and_no_api_exits_4(cli: Cli) -> None:
    for args in (
        ["apartment", "add-building", "checkout", "-c", "main"],  # no -a
        ["apartment", "add-building", "checkout", "-a", "shop", "-c", "aside"],
        ["apartment", "add-building", "checkout", "-a", "shop"],  # no --category
        ["apartment", "create", "shop", "-b", "header"],  # no category
        ["apartment", "create", "shop", "-b", "a:main", "-b", "a:footer"],
        ["apartment", "rename-building", "header", "-a", "shop"],  # nothing to change
        ["apartment", "rename", "-a", "shop"],
        ["apartment", "remove-building", "x", "-a", "shop", "--if-revision", "0"],
        ["apartment", "get"],
    ):
        assert cli(*args).exit_code == 2, args
    down = Cli(f"http://127.0.0.1:{free_port()}")
    result = down("apartment", "list")
    assert result.exit_code == 4 and "cannot reach the API" in result.stderr
