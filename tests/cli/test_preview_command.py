"""`skyline rollout preview shop/header`: the signed override link, against the live API."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.cli.conftest import ADMIN_TOKEN, Cli, refused
from tests.support.scenario import create_apartment, make_bundle, parked_strategy, unique, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_preview_prints_the_override_link_of_the_rollouts_version(
    cli: Cli, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    body = {
        "apartment": apartment,
        "building": "header",
        "unit_id": "header",
        "version": "1.1.0",
        "bundle": {"path": str(make_bundle(tmp_path / "dist", "1.1.0"))},
        "strategy": parked_strategy(),
        "actor": "tests",
    }
    started = await api.post("/rollouts", json=body)
    assert started.status_code == 201, started.text
    await wait_for(api, started.json()["id"], lambda s: bool(s["revisions"]))
    shell = "https://shop.example/index.html?lang=en"

    # --json: the API's answer, with the link; the version defaults to the rollout's.
    issued = cli.json("rollout", "preview", f"{apartment}/header", "--shell", shell)
    assert (issued["apartment"], issued["building"], issued["unit"], issued["version"]) == (
        apartment,
        "header",
        "header",
        "1.1.0",
    )
    query = parse_qs(urlsplit(issued["link"]).query)
    assert query == {"lang": ["en"], "skyline_override": [issued["token"]]}
    unit = await api.get("/overrides/unit", params={"token": issued["token"]})
    assert unit.status_code == 200 and unit.json()["unit"]["id"] == "header@1.1.0"

    # For people: what it forces and until when, then the link alone on its last line.
    human = cli("rollout", "preview", f"rollout.{apartment}.header", "-V", "1.0.0", "--ttl", "60")
    assert human.exit_code == 0, human.output
    assert f"{apartment}/header -> header@1.0.0" in human.stdout
    last = human.stdout.strip().splitlines()[-1]
    assert last.startswith("?skyline_override=") and " " not in last
    token = last.removeprefix("?skyline_override=")
    assert (await api.get("/overrides/unit", params={"token": token})).json()["unit"]["id"] == "header@1.0.0"
    # A building with -a, and SKYLINE_SHELL_URL for the shell.
    cli.env["SKYLINE_SHELL_URL"] = "https://shop.example/"
    with_env = cli.json("rollout", "preview", "header", "-a", apartment, "-V", "1.0.0")
    assert with_env["link"].startswith("https://shop.example/?skyline_override=")

    # Exit codes: 1 for what the API refuses (its message on stderr), 2 for usage.
    refused(
        cli("rollout", "preview", f"{apartment}/header", "-V", "9.9.9"),
        "404",
        "no published",
        "field: version",
    )
    refused(cli("rollout", "preview", f"{apartment}/footer"), "404")
    refused(cli("rollout", "preview", f"{apartment}/header", "-V", "1.1.0", "--ttl", "9999999"), "422")
    assert cli("rollout", "preview", "header").exit_code == 2
    as_json = cli("-o", "json", "rollout", "preview", f"{apartment}/header", "-V", "9.9.9")
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["error"]["code"] == "unknown_version"


async def test_preview_needs_a_deployer(secured_url: str) -> None:
    admin = Cli(secured_url, token=ADMIN_TOKEN)
    async with httpx.AsyncClient(base_url=secured_url, timeout=30) as api:
        apartment = await create_apartment(api, headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    viewer = admin.json("token", "create", unique("cli-viewer"), "--role", "viewer")["token"]
    deployer = admin.json("token", "create", unique("cli-deployer"), "--role", "deployer")["token"]
    args = ("rollout", "preview", f"{apartment}/header", "-V", "1.0.0")
    refused(admin(*args, token=viewer), "403", "this needs deployer or higher")
    issued = admin.json(*args, token=deployer)
    assert issued["version"] == "1.0.0" and issued["issuer"].startswith("cli-deployer")


async def test_revoke_preview_stops_a_link_before_it_expires(cli: Cli, api: httpx.AsyncClient) -> None:
    apartment = await create_apartment(api)
    issued = cli.json(
        "rollout", "preview", f"{apartment}/header", "-V", "1.0.0", "--shell", "https://s.example/"
    )
    assert (await api.get("/overrides/unit", params={"token": issued["token"]})).status_code == 200
    human = cli("rollout", "revoke-preview", issued["link"])
    assert human.exit_code == 0, human.output
    assert f"revoked: {apartment}/header -> header@1.0.0" in human.stdout
    assert (await api.get("/overrides/unit", params={"token": issued["token"]})).status_code == 401
    again = cli.json("rollout", "revoke-preview", issued["token"])  # idempotent, by token too
    assert again["unit"] == "header@1.0.0"
    bad = cli("rollout", "revoke-preview", "not-a-token")
    assert bad.exit_code == 1 and "invalid_override_token" in bad.output
