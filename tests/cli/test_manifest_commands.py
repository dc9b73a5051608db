"""`skyline manifest …` against the live API, on an apartment a CLI rollout changed."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import Cli, refused
from tests.support.scenario import create_apartment, make_bundle, wait_state

pytestmark = pytest.mark.asyncio(loop_scope="session")


def active_header(manifest: dict[str, object], apartment: str) -> object:
    apartments = manifest["apartments"]
    assert isinstance(apartments, dict)
    return apartments[apartment]["buildings"]["header"].get("active_unit")


async def test_show_history_diff_resolve_and_undo(cli: Cli, api: httpx.AsyncClient, tmp_path: Path) -> None:
    apartment = await create_apartment(api)
    bundle = make_bundle(tmp_path / "dist", "1.1.0")
    created = cli.json(
        "rollout", "start", "-a", apartment, "-b", "header", "-u", "header", "-V", "1.1.0",
        "--bundle-dir", str(bundle), "--steps", "5,100", "--bake", "600", "--interval", "60",
        "--framework", "preact",
    )  # fmt: skip
    await wait_state(api, created["id"], {"progressing"})
    assert cli.json("rollout", "promote", created["id"], "--full")["state"] == "succeeded"
    unit = cli.json("manifest", "show", "-a", apartment)["apartments"][apartment]["buildings"]["header"]
    assert unit["units"]["header@1.1.0"]["framework"] == "preact"  # not the "react" default

    current = cli.json("manifest", "show", apartment)
    assert active_header(current, apartment) == "header@1.1.0"
    head = int(current["version"])
    assert head >= 3  # created, 5 %, promoted
    shown = cli("manifest", "show", apartment)
    assert shown.exit_code == 0 and "header@1.1.0 (stable)" in shown.stdout
    first = cli.json("manifest", "show", apartment, "--revision", "1")
    assert first["version"] == "1" and active_header(first, apartment) == "header@1.0.0"
    settled = cli.json("manifest", "show", apartment, "--last-known-good")
    assert settled["version"] == str(head)

    listing = cli.json("manifest", "history", apartment)
    assert listing == {"apartment": apartment, "current": head, "revisions": list(range(1, head + 1))}
    # one convention: -a/--apartment everywhere, the positional form still works
    assert cli.json("manifest", "history", "-a", apartment) == listing
    assert cli.json("manifest", "history", "--apartment", apartment) == listing
    assert cli("manifest", "history").exit_code == 2
    assert cli("manifest", "history", apartment, "-a", "other").exit_code == 2
    table = cli("manifest", "history", apartment)
    assert table.exit_code == 0, table.output
    assert f"{head} (current)" in table.stdout and "create apartment" in table.stdout
    assert "tests" in table.stdout  # the actor of revision 1

    assert cli.json("manifest", "diff", "-a", apartment, "--from", "1") == cli.json(
        "manifest", "diff", apartment, "--from", "1"
    )
    changed = cli.json("manifest", "diff", apartment, "--from", "1")
    assert changed["from_revision"] == 1 and changed["to_revision"] == head
    paths = {c["path"]: c for c in changed["changes"]}
    moved = paths[f"apartments.{apartment}.buildings.header.active_unit"]
    assert (moved["old"], moved["new"]) == ("header@1.0.0", "header@1.1.0")
    rendered = cli("manifest", "diff", apartment, "--from", "1", "--to", "2")
    assert rendered.exit_code == 0 and "revision 1 → 2" in rendered.stdout and "added" in rendered.stdout
    # an added unit reads as its id, version and weight, not as a JSON blob starting with its checksum
    assert "unit header@1.1.0, version 1.1.0, rollout 5%, status canary" in rendered.stdout
    assert '{"checksum"' not in rendered.stdout

    served = cli.json(
        "manifest", "resolve", apartment, "--user", "u-42", "--region", "eu", "--segment", "beta"
    )
    assert served["header"]["unit"]["id"] == "header@1.1.0" and served["main"]["unit"] is None
    assert "header@1.1.0" in cli("manifest", "resolve", apartment, "--user", "u-42").stdout

    undone = cli.json(
        "manifest", "undo", apartment, "--to", "1", "--reason", "bad release", "--actor", "dana"
    )
    assert undone == {"apartment": apartment, "revision": head + 1, "restored_from": 1}
    after = cli.json("manifest", "show", apartment)
    assert active_header(after, apartment) == "header@1.0.0" and after["change"]["actor"] == "dana"

    refused(
        cli("manifest", "undo", apartment, "--to", str(head + 1)), "already current", "field: to_revision"
    )
    refused(cli("manifest", "show", apartment, "--revision", "999"), "404", "has no revision 999")
    refused(cli("manifest", "show", "no-such-apartment"), "404", "no apartment 'no-such-apartment'")
    refused(cli("manifest", "resolve", apartment, "--user", "x" * 300), "422", "field: user")
    assert cli("manifest", "diff", apartment).exit_code == 2  # --from is required
    assert cli("manifest", "show", apartment, "--revision", "1", "--last-known-good").exit_code == 2
