"""Developer overrides in Chromium on the real stack (issue 15, item 4).

header@1.0.0 is the active unit; header@1.1.0 is staged at 0 % by a real blue-green rollout
(nobody gets it). A deployer's override link (POST /overrides with the shell's URL) makes one
browser load 1.1.0, on that page and the next ones (the loader keeps the token in
localStorage), while every other browser, the same user id included, gets 1.0.0. A forged
override (its expiry extended, so only the API can tell) and an expired one are ignored and
forgotten. Overridden loads are labelled in beacons and counted in
skyline_unit_override_loads_total, never in skyline_unit_loads_total. A shell that uses the
`import-map-overrides` npm package (6.1.0) and opts in gets its developer URL mounted
instead, without beacons; a shell that did not opt in ignores it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext
from prometheus_client.parser import text_string_to_metric_families

from api.routes.loader import LoaderAsset
from demo.shell import manifest_url, publish_shell, shell_html
from demo.units import DemoUnit
from skyline.manifest import ApartmentManifest
from skyline.settings import Settings
from tests.api.test_overrides import tamper
from tests.browser.bundler import IMPORT_MAP_OVERRIDES
from tests.browser.support import DONE, demo_for, unit_loads
from tests.browser.test_integrations import PAGE_MODULE, publish_vendor
from tests.support.scenario import unique

pytestmark = pytest.mark.asyncio(loop_scope="session")

USERS = [f"ovr-user-{i:02d}" for i in range(8)]


def header(version: str) -> DemoUnit:
    entry = f"""export const version = {json.dumps(version)};
export function mount(element) {{
  element.textContent = "header " + version;
  element.dataset.version = version;
}}
"""
    return DemoUnit("header", "header", version, {"index.js": entry})


async def override_loads(api: httpx.AsyncClient, apartment: str) -> dict[tuple[str, str], float]:
    """skyline_unit_override_loads_total of one apartment: (version, outcome) -> count."""
    text = (await api.get("/metrics/")).text
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "skyline_unit_override_loads_total" and s.labels.get("apartment") == apartment:
                out[(s.labels["version"], s.labels["outcome"])] = s.value
    return out


async def load(context: BrowserContext, url: str) -> dict[str, Any]:
    page = context.pages[0] if context.pages else await context.new_page()
    await page.goto(url)
    await page.wait_for_function(DONE, timeout=20_000)
    report: dict[str, Any] = await page.evaluate("window.skyline.report")
    assert report.get("error") is None, report
    report["text"] = await page.inner_text('[data-skyline-building="header"]')
    report["stored"] = await page.evaluate("localStorage.getItem('skyline.overrides')")
    # beacons went before `done`; runtime ones would come later (there are none here)
    return report


async def test_an_override_link_gives_one_browser_a_version_at_zero_percent(
    api: httpx.AsyncClient,
    edge: httpx.AsyncClient,
    s3: Any,
    settings: Settings,
    browser: Browser,
    shell_packages: Path,
    tmp_path: Path,
) -> None:
    apartment = unique("ovr")
    demo = demo_for(api, s3, settings, tmp_path, apartment)
    await demo.create_apartment()
    await demo.install_stable(header("1.0.0"))
    rollout_id, _ = await demo.start_rollout(
        header("1.1.0"),
        {"kind": "blue_green", "preview_seconds": 3600, "bake_seconds": 900},
        "staged at 0 %, nobody gets it",
    )
    await demo.wait(rollout_id, lambda s: len(s["revisions"]) >= 1, 60)
    manifest = ApartmentManifest.model_validate_json(
        (await edge.get(manifest_url(settings, apartment))).content
    )
    staged = manifest.apartments[apartment].buildings["header"].units["header@1.1.0"]
    assert staged.rollout is not None and staged.rollout.percentage == 0

    api_url = f"http://{settings.api_host}:{settings.api_port}"
    loader = LoaderAsset.model_validate((await api.get("/loader")).json())
    page = shell_html(
        title="overrides",
        apartment=apartment,
        manifest=manifest_url(settings, apartment),
        beacons=f"{api_url}/beacons",
        loader=loader,
        buildings=("header",),
    )
    shell = await asyncio.to_thread(publish_shell, s3, settings, apartment, page, "overrides.html")

    issued = await api.post(
        "/overrides",
        json={"apartment": apartment, "building": "header", "version": "1.1.0", "shell_url": shell},
    )
    assert issued.status_code == 201, issued.text
    link, token = issued.json()["link"], issued.json()["token"]
    assert link == f"{shell}?skyline_override={token}"

    # 1. The browser that opens the link gets 1.1.0, on this page and the next ones.
    qa = await browser.new_context()
    errors: list[str] = []
    (await qa.new_page()).on("pageerror", lambda e: errors.append(str(e)))
    for url in (f"{link}&skyline_user=qa-1", f"{shell}?skyline_user=qa-1", f"{shell}?skyline_user=qa-2"):
        seen = await load(qa, url)
        building = seen["buildings"]["header"]
        assert (building["unit"], building["reason"], building["state"]) == (
            "header@1.1.0",
            "override",
            "loaded",
        )
        assert seen["text"] == "header 1.1.0"
        assert seen["integrity"] == "importmap"
        assert seen["importmap"]["imports"][f"@{apartment}/header"] == staged.url
        assert seen["overrides"]["header"]["unit"]["checksum"] == staged.checksum
        assert [b.get("override") for b in seen["beacons"]] == [True]
        assert seen["beacon_status"] == 202, seen
        assert json.loads(seen["stored"]) == [token]

    # 2. Every other browser gets the active unit: the same user id, and everyone else.
    other = await browser.new_context()
    for user in ["qa-1", *USERS]:
        seen = await load(other, f"{shell}?skyline_user={user}")
        building = seen["buildings"]["header"]
        assert (building["unit"], building["reason"]) == ("header@1.0.0", "stable"), user
        assert seen["text"] == "header 1.0.0"
        assert "override" not in seen["beacons"][0]
        assert seen["beacon_status"] == 202

    # 3. Forged (expiry extended: the claims look fine, the signature does not verify) and
    # expired overrides are ignored, and forgotten.
    forged = tamper(token, e=int(issued.json()["expires_at"]) + 86400)
    seen = await load(other, f"{shell}?skyline_user=qa-1&skyline_override={forged}")
    assert seen["buildings"]["header"]["unit"] == "header@1.0.0" and seen["text"] == "header 1.0.0"
    assert seen["overrides"] == {} and seen["stored"] is None
    short = await api.post(
        "/overrides",
        json={"apartment": apartment, "building": "header", "version": "1.1.0", "ttl_seconds": 3},
    )
    brief = short.json()["token"]
    later = await browser.new_context()
    seen = await load(later, f"{shell}?skyline_user=qa-3&skyline_override={brief}")
    assert seen["buildings"]["header"]["unit"] == "header@1.1.0"
    await asyncio.sleep(3.2)
    seen = await load(later, f"{shell}?skyline_user=qa-3")  # stored, now expired
    assert seen["buildings"]["header"]["unit"] == "header@1.0.0" and seen["stored"] is None
    seen = await load(later, f"{shell}?skyline_user=qa-3&skyline_override={brief}")  # given again, expired
    assert seen["buildings"]["header"]["unit"] == "header@1.0.0" and seen["stored"] is None
    # `off` forgets a browser's overrides.
    seen = await load(qa, f"{shell}?skyline_user=qa-1&skyline_override=off")
    assert seen["buildings"]["header"]["unit"] == "header@1.0.0" and seen["stored"] is None

    # 4. Overridden loads are counted apart; the canary's series never saw 1.1.0.
    loads = await unit_loads(api, apartment)
    assert not [k for k in loads if k[2] == "1.1.0"], loads
    assert (
        loads[("header", "header", "1.0.0", "loaded")] == 1 + len(USERS) + 4
    )  # other browsers, forged, expired twice, off
    assert (await override_loads(api, apartment)) == {("1.1.0", "loaded"): 4.0}

    # 5. import-map-overrides: a shell that loads the library and opts in mounts the developer's
    # URL for @<apartment>/header; a shell that did not opt in ignores the entry.
    library, _ = await asyncio.to_thread(
        publish_vendor,
        s3,
        settings,
        "import-map-overrides",
        (shell_packages / IMPORT_MAP_OVERRIDES).read_bytes(),
    )
    dev, _ = await asyncio.to_thread(
        publish_vendor, s3, settings, f"{apartment}-dev-header", header("dev").files["index.js"].encode()
    )
    imo_page = (
        page.replace('{"apartment": ', '{"import_map_overrides": true, "apartment": ')
        .replace("</head>", f'<script src="{library}"></script>\n</head>')
        .replace("</body>", PAGE_MODULE + "</body>")
    )
    imo_shell = await asyncio.to_thread(publish_shell, s3, settings, apartment, imo_page, "imo.html")
    developer = await browser.new_context()
    plain = await load(developer, f"{imo_shell}?skyline_user=dev-1")
    assert plain["buildings"]["header"]["unit"] == "header@1.0.0"
    dev_page = developer.pages[0]
    await dev_page.evaluate(
        f"window.importMapOverrides.addOverride({json.dumps(f'@{apartment}/header')}, {json.dumps(dev)})"
    )
    seen = await load(developer, f"{imo_shell}?skyline_user=dev-1")
    building = seen["buildings"]["header"]
    assert (building["reason"], building["state"], seen["text"]) == ("override", "loaded", "header dev")
    # The library's own import map came first: the page's bare import gets the same module.
    await dev_page.wait_for_function("() => document.body.dataset.header", timeout=10_000)
    assert await dev_page.evaluate("document.body.dataset.header") == "dev"
    assert seen["beacons"] == [] and seen["beacon_status"] is None
    not_opted_in = await load(developer, f"{shell}?skyline_user=dev-1")
    assert not_opted_in["buildings"]["header"]["unit"] == "header@1.0.0"
    assert (await override_loads(api, apartment)) == {("1.1.0", "loaded"): 4.0}

    assert not errors, errors
    for context in (qa, other, later, developer):
        await context.close()
