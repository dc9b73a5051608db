"""The loader in headless Chromium against the real stack: split, SRI, emergency rollback.

A real rollout puts header@1.1.0 at 50 % (manifest written by the workflow,
purged and verified at the edge); a fixed set of users opens the shell and
each must get exactly the unit skyline.split says. Then an emergency
rollback: the very next page load of every one of them gets the stable unit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser

from demo.shell import manifest_url
from demo.units import DemoUnit
from skyline.manifest import ApartmentManifest
from skyline.settings import Settings
from skyline.split import SplitUser, resolve
from tests.browser.support import demo_for, load_as, slot_text, sri, unit_loads
from tests.support.scenario import unique

pytestmark = pytest.mark.asyncio(loop_scope="session")

USERS = [f"user-{i:03d}" for i in range(40)]


def header(version: str) -> DemoUnit:
    entry = "export function mount(el, ctx) { el.textContent = `header ${ctx.version}`; }\n"
    return DemoUnit("header", "header", version, {"index.js": entry, "chunks/unused.js": f"// {version}\n"})


async def test_canary_at_50_percent_split_sri_and_emergency_rollback(
    api: httpx.AsyncClient,
    edge: httpx.AsyncClient,
    s3: Any,
    settings: Settings,
    browser: Browser,
    tmp_path: Path,
) -> None:
    apartment = unique("split")
    demo = demo_for(api, s3, settings, tmp_path, apartment)
    await demo.create_apartment()
    await demo.install_stable(header("1.0.0"))
    rollout_id, _ = await demo.start_rollout(
        header("1.1.0"),
        # Long bake, no analysis while the test runs: the weight stays at 50 %.
        {"kind": "canary", "steps": [50, 100], "bake_seconds": 900, "analysis_interval_seconds": 600},
        "canary at 50%",
    )
    await demo.wait(rollout_id, lambda s: s["weight"] == 50 and len(s["revisions"]) == 1, 60)
    shell_url = await demo.publish_shell()

    served = await edge.get(manifest_url(settings, apartment))
    manifest = ApartmentManifest.model_validate_json(served.content)
    building = manifest.apartment(apartment).buildings["header"]
    canary = building.canary()
    assert canary is not None and canary.rollout is not None and canary.rollout.percentage == 50
    expected = {u: resolve(manifest, apartment, SplitUser(id=u))["header"] for u in USERS}
    assert {a.unit.id for a in expected.values() if a.unit} == {"header@1.0.0", "header@1.1.0"}

    context = await browser.new_context()
    page = await context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    got: dict[str, str] = {}
    for user in USERS:
        report = await load_as(page, shell_url, user, settings)
        entry = report["buildings"]["header"]
        want = expected[user]
        assert want.unit is not None
        assert (entry["unit"], entry["reason"], entry["bucket"]) == (
            want.unit.id,
            want.reason,
            want.bucket,
        ), user
        assert entry["state"] == "loaded" and report["beacon_status"] == 202, report
        assert await slot_text(page, "header") == f"header {want.unit.version}"
        # Buildings without a unit stay empty and load nothing.
        assert report["buildings"]["main"]["state"] == "skipped"
        got[user] = entry["unit"]

    # The modules ran from <script type=module integrity=…> with the manifest's
    # checksum, which is the sha384 of what the edge serves.
    for unit in (building.active(), canary):
        assert unit is not None
        body = (await edge.get(unit.url)).content
        assert unit.checksum == sri(body)
        user = next(u for u, key in got.items() if key == unit.id)
        await load_as(page, shell_url, user, settings)
        integrity = await page.evaluate(
            "url => document.querySelector(`script[type=module][src='${url}']`).integrity", unit.url
        )
        assert integrity == unit.checksum
    # (the loader's integrity probe, a data: module with a wrong SRI on purpose, is refused)
    assert not [line for line in console if "integrity" in line and "'data:" not in line], console

    # Every load was counted once, under the version the browser ran.
    loads = await unit_loads(api, apartment)
    for version in ("1.0.0", "1.1.0"):
        users = sum(1 for key in got.values() if key == f"header@{version}")
        assert loads[("header", "header", version, "loaded")] == users + 1  # +1: the SRI check above
    assert not [k for k in loads if k[3] != "loaded"], loads

    # Emergency rollback: answered once last-known-good is served at the edge.
    response = await api.post(f"/rollouts/{rollout_id}/rollback", json={"actor": "tests", "reason": "pager"})
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "rolled_back"
    canary_users = [u for u, key in got.items() if key == "header@1.1.0"]
    # The same browser (HTTP cache and all) and a brand-new one both get the stable unit.
    fresh = await (await browser.new_context()).new_page()
    for tab in (page, fresh):
        for user in canary_users:
            report = await load_as(tab, shell_url, user, settings)
            entry = report["buildings"]["header"]
            assert (entry["unit"], entry["reason"], entry["state"]) == ("header@1.0.0", "stable", "loaded")
            assert await slot_text(tab, "header") == "header 1.0.0"
    await fresh.context.close()
    await context.close()
