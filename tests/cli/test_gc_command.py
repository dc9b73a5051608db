"""`skyline manifest gc` against the live API: files past retention, dry run then for real.

The history is written with timestamps two months old (tests/activities/test_retention.py),
so the API's real clock and its default 7-day retention put part of it past the window;
the command is scoped to that apartment (`-a`), leaving the session's other files alone.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from skyline.settings import Settings
from tests.activities.test_retention import present, write_history
from tests.cli.conftest import Cli, refused

pytestmark = pytest.mark.asyncio(loop_scope="session")

PAST = {"chunk-A.js", "chunk-C.js", "index.100.js", "index.120.js"}


async def test_gc_dry_run_lists_then_deletes_exactly_those(
    cli: Cli, api: httpx.AsyncClient, s3: Any, settings: Settings
) -> None:
    apartment, name, _ = write_history(s3, settings)
    prefix = f"bundles/{name}/"
    before = present(s3, settings, prefix)

    dry = cli.json("manifest", "gc", "--dry-run", "-a", apartment)
    assert dry["dry_run"] is True and dry["deleted"] == 0
    assert dry["retention_seconds"] == 7 * 86400
    assert {c["key"].removeprefix(prefix) for c in dry["collect"]} == PAST
    why = {c["key"].removeprefix(prefix): (c["apartment"], c["revision"]) for c in dry["collect"]}
    assert why["index.100.js"] == (apartment, 1) and why["index.120.js"] == (apartment, 3)
    assert present(s3, settings, prefix) == before  # a dry run deletes nothing

    table = cli("manifest", "gc", "--dry-run", "-a", apartment)
    assert table.exit_code == 0, table.output
    assert "would delete 4 files" in table.stdout and f"{apartment} revision 3" in table.stdout

    done = cli.json("manifest", "gc", "-a", apartment, "-r", "tests")
    assert done["dry_run"] is False and done["deleted"] == 4
    assert present(s3, settings, prefix) == before - PAST
    assert cli.json("manifest", "gc", "--dry-run", "-a", apartment)["collect"] == []
    # Undo to a revision whose files were collected is refused, naming them.
    refused(cli("manifest", "undo", "-a", apartment, "--to", "1"), "no longer holds", "index.100.js")


async def test_gc_refuses_bad_input_in_the_error_shape(cli: Cli, api: httpx.AsyncClient) -> None:
    refused(cli("manifest", "gc", "--dry-run", "-a", "no-such-apartment-here"), "no apartment")
    bad = await api.post("/storage/gc", json={"apartment": "Not A Slug"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "apartment"
    typo = await api.post("/storage/gc", json={"dryrun": False})
    assert typo.status_code == 422 and typo.json()["error"]["field"] == "dryrun"
    kind = await api.post("/storage/gc", json={"dry_run": "maybe"})
    assert kind.status_code == 422 and kind.json()["error"]["field"] == "dry_run"
