"""The Temporal UI's workflow list, read the way a release manager reads it (issue 24).

Three rollouts of one building share the workflow id `rollout.<apartment>.<building>` (the id is
the building's lock), and the UI's Status column says Completed for a promoted and a rolled-back
one alike. What tells them apart is the search attribute columns, added with the UI's own column
picker as a user adds them (adapters/search_attributes.py LIST_COLUMNS).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.async_api import Browser, Page

from adapters import search_attributes as search
from skyline.settings import Settings
from stack.embedded import EmbeddedStack
from tests.conftest import ARTIFACTS
from tests.support.scenario import create_apartment, make_bundle, parked_strategy, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

# The UI's default columns (Temporal UI 2.54) that LIST_COLUMNS replaces or keeps.
DEFAULT_COLUMNS = ("Status", "Workflow ID", "Run ID", "Type", "Start", "End")

READ_TABLE = """() => {
  const table = document.querySelector('tr[data-testid="workflows-summary-configurable-table-row"]')
    ?.closest('table');
  if (!table) return null;
  // The first two columns are a checkbox and a button: their headers are not column labels.
  const headers = [...table.querySelectorAll('thead th')]
    .map((th) => (th.querySelector('input') ? '' : th.innerText.trim()));
  const rows = [...table.querySelectorAll('tr[data-testid="workflows-summary-configurable-table-row"]')]
    .map((tr) => [...tr.querySelectorAll('td')].map((td) => td.innerText.trim()));
  return {headers, rows};
}"""


async def start(api: httpx.AsyncClient, apartment: str, version: str, tmp_path: Path) -> str:
    body = {
        "apartment": apartment,
        "building": "header",
        "unit_id": "header",
        "version": version,
        "bundle": {"path": str(make_bundle(tmp_path / version, version))},
        "strategy": parked_strategy(),
        "actor": "rm",
    }
    started = await api.post("/rollouts", json=body)
    assert started.status_code == 201, started.text
    rollout_id: str = started.json()["id"]
    await wait_for(api, rollout_id, lambda s: s["state"] == "progressing" and s["revisions"])
    return rollout_id


async def configure_columns(page: Page) -> None:
    """What a user does once per browser: the picker below the list (Configure Columns), the
    defaults other than Status and Workflow ID out, then LIST_COLUMNS in their order."""
    await page.click('button[data-track-intent="configure-columns"]')
    for label in DEFAULT_COLUMNS[2:]:
        await page.get_by_label(f"Remove {label} column").click()
    for label in search.LIST_COLUMNS[2:]:
        await page.get_by_label(f"Add {label} column").click()
    await page.keyboard.press("Escape")


def as_records(table: dict[str, Any]) -> list[dict[str, str]]:
    """Rows keyed by header; the row's leading cells (checkbox, actions) have blank headers."""
    headers: list[str] = table["headers"]
    return [{h: cell for h, cell in zip(headers, row, strict=False) if h} for row in table["rows"]]


async def read_list(page: Page, url: str, states: list[str], timeout: float = 120) -> list[dict[str, str]]:
    """The list at `url`, reloaded until its rows show `states` in order (visibility takes a
    workflow's last upsert a moment after the workflow task)."""
    deadline = time.monotonic() + timeout
    records: list[dict[str, str]] = []
    while time.monotonic() < deadline:
        await page.goto(url)
        try:
            await page.wait_for_selector(
                'tr[data-testid="workflows-summary-configurable-table-row"]', timeout=20_000
            )
        except Exception:  # noqa: BLE001 - no row yet (the list loads slowly on a busy machine): reload
            continue
        table = await page.evaluate(READ_TABLE)
        records = as_records(table) if table else []
        if [r.get(search.STATE.name) for r in records] == states:
            return records
        await asyncio.sleep(0.5)
    ARTIFACTS.mkdir(exist_ok=True)  # what the list showed last, for whoever reads the failure
    (ARTIFACTS / "temporal-ui-list-failed.html").write_text(await page.content())
    await page.screenshot(path=str(ARTIFACTS / "temporal-ui-list-failed.png"), full_page=True)
    raise AssertionError(f"the list at {url} never showed states {states}; last: {records}")


async def test_promoted_rolled_back_and_running_rollouts_read_apart_in_the_list(
    api: httpx.AsyncClient, stack: EmbeddedStack, settings: Settings, browser: Browser, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)  # header runs 1.0.0
    promoted = await start(api, apartment, "1.1.0", tmp_path)
    answer = await api.post(f"/rollouts/{promoted}/promote", params={"full": "true"}, json={"actor": "rm"})
    assert answer.status_code == 200, answer.text
    await wait_for(api, promoted, lambda s: s["state"] == "succeeded")
    rolled_back = await start(api, apartment, "1.2.0", tmp_path)
    answer = await api.post(f"/rollouts/{rolled_back}/rollback", json={"actor": "rm", "reason": "pager"})
    assert answer.status_code == 200, answer.text
    await wait_for(api, rolled_back, lambda s: s["state"] == "rolled_back")
    running = await start(api, apartment, "1.3.0", tmp_path)
    # One building, one id: the id alone cannot tell these three apart.
    assert promoted == rolled_back == running == f"rollout.{apartment}.header"

    ui = f"http://127.0.0.1:{stack.ports.temporal_ui}/namespaces/{settings.temporal_namespace}/workflows"
    page = await browser.new_page(viewport={"width": 1900, "height": 700})
    try:
        of_apartment = f'SkylineApartment = "{apartment}"'
        everything = f"{ui}?query={quote(of_apartment)}"
        await page.goto(everything)
        await configure_columns(page)
        records = await read_list(page, everything, ["progressing", "rolled_back", "succeeded"])
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "temporal-ui-list.png"), full_page=True)

        table = await page.evaluate(READ_TABLE)
        assert [h for h in table["headers"] if h] == list(search.LIST_COLUMNS)
        shown = [
            (
                r["Status"],
                r["Workflow ID"],
                r["SkylineUnit"],
                r["SkylineVersion"],
                r["SkylineStrategy"],
                r["SkylineState"],
            )
            for r in records
        ]
        workflow_id = f"rollout.{apartment}.header"
        assert shown == [  # newest first
            ("RUNNING", workflow_id, "header", "1.3.0", "canary", "progressing"),
            ("COMPLETED", workflow_id, "header", "1.2.0", "canary", "rolled_back"),
            ("COMPLETED", workflow_id, "header", "1.1.0", "canary", "succeeded"),
        ]
        assert records[0]["SkylineWeight"] == "5" and records[2]["SkylineWeight"] == "100"

        # The README's filter for paused rollouts, typed into the list's query as a user would.
        paused = await api.post(f"/rollouts/{running}/pause", json={"actor": "rm", "reason": "look"})
        assert paused.status_code == 200, paused.text
        query = f'SkylineState = "paused" AND ExecutionStatus = "Running" AND {of_apartment}'
        only_paused = await read_list(page, f"{ui}?query={quote(query)}", ["paused"])
        assert [(r["SkylineVersion"], r["SkylineState"]) for r in only_paused] == [("1.3.0", "paused")]
    finally:
        await page.close()
        await api.post(f"/rollouts/{running}/rollback", json={"actor": "rm"})
