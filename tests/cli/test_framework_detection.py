"""`--framework` left out: the manifest records what the bundle says it is built with, or unknown."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import Cli
from tests.support.scenario import create_apartment, make_bundle, wait_state

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def recorded_framework(cli: Cli, api: httpx.AsyncClient, bundle: Path, *flags: str) -> str:
    apartment = await create_apartment(api)
    created = cli.json(
        "rollout", "start", "-a", apartment, "-b", "header", "-u", "header", "-V", "1.1.0",
        "--bundle-dir", str(bundle), "--steps", "5,100", "--bake", "600", "--interval", "60", *flags,
    )  # fmt: skip
    await wait_state(api, created["id"], {"progressing"})
    manifest = cli.json("manifest", "show", "-a", apartment)
    unit = manifest["apartments"][apartment]["buildings"]["header"]["units"]["header@1.1.0"]
    cli.json("rollout", "rollback", created["id"], "-r", "test done")
    return str(unit["framework"])


async def test_the_framework_comes_from_the_bundle_or_is_unknown(
    cli: Cli, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    # an entry that keeps preact external (shared through the import map)
    imports = make_bundle(tmp_path / "imports", "1.1.0")
    entry = imports / "index.js"
    entry.write_text('import { h, render } from "preact";\nimport "preact/hooks";\n' + entry.read_text())
    assert await recorded_framework(cli, api, imports) == "preact"

    # a bundle that inlined vue but ships its package.json
    declared = make_bundle(tmp_path / "declared", "1.1.0")
    (declared / "package.json").write_text(json.dumps({"dependencies": {"vue": "^3.5.0"}}))
    assert await recorded_framework(cli, api, declared) == "vue"

    # nothing says: unknown, not react
    assert await recorded_framework(cli, api, make_bundle(tmp_path / "plain", "1.1.0")) == "unknown"

    # an explicit --framework still wins over what the bundle says
    assert await recorded_framework(cli, api, imports, "--framework", "react") == "react"
