"""Skew protection in Chromium: a promotion while a page is open does not reach that page.

header@1.0.0 and footer@1.0.0 are installed (real rollouts). A shell with only the
header's element opens as one user: header 1.0.0 mounts. Then header@1.1.0 and
footer@1.1.0 are promoted (two more rollouts; the manifest at the edge changes).
In the page still open:

- the header's own lazy import (`import("./lazy-….js")` on a click) fetches 1.0.0's chunk,
  which storage still holds (shared per-unit directory, nothing deleted);
- a footer element added later and mounted with `window.skyline.load("footer")` gets
  footer 1.0.0, from the revision the page started with, without reading the manifest again;
- `import("@<apartment>/footer")` resolves to 1.0.0; unmounting the header and loading it
  again mounts 1.0.0; a second `start()` of the loader module keeps the pinned revision.

A new page load gets 1.1.0 everywhere. `skyline manifest gc --dry-run` (the API) has
nothing to collect: every file of the old revision is within the retention window.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page

from api.routes.loader import LoaderAsset
from demo.shell import manifest_url, publish_shell, shell_html
from demo.units import DemoUnit
from skyline.settings import Settings
from tests.browser.support import demo_for, load_as
from tests.support.scenario import unique

pytestmark = pytest.mark.asyncio(loop_scope="session")

USER = "skew-user-1"


def header(version: str) -> DemoUnit:
    """Mounts, and on a click imports its lazy chunk (named per version, as a bundler hashes it)."""
    tag = version.replace(".", "")
    entry = f"""export function mount(el, ctx) {{
  el.textContent = "header {version}";
  el.dataset.version = ctx.version;
  el.addEventListener("click", async () => {{
    const lazy = await import("./lazy-{tag}.js");
    el.dataset.lazy = lazy.version;
  }});
}}
export function unmount(el) {{ el.textContent = ""; delete el.dataset.version; }}
"""
    chunk = f'export const version = "{version}";\n'
    return DemoUnit("header", "header", version, {"index.js": entry, f"lazy-{tag}.js": chunk})


def footer(version: str) -> DemoUnit:
    entry = f"""export const version = "{version}";
export function mount(el) {{ el.textContent = "footer {version}"; el.dataset.version = version; }}
"""
    return DemoUnit("footer", "footer", version, {"index.js": entry})


async def manifest_revision(edge: httpx.AsyncClient, settings: Settings, apartment: str) -> int:
    response = await edge.get(manifest_url(settings, apartment), headers={"cache-control": "no-cache"})
    assert response.status_code == 200
    return int(response.json()["version"])


async def lazy_click(page: Page) -> str:
    await page.click('[data-skyline-building="header"]')
    await page.wait_for_function(
        "() => document.querySelector('[data-skyline-building=\"header\"]').dataset.lazy", timeout=10_000
    )
    return str(await page.get_attribute('[data-skyline-building="header"]', "data-lazy"))


LAZY_FOOTER = """async () => {
  const el = document.createElement("div");
  el.dataset.skylineBuilding = "footer";
  document.body.append(el);
  const entry = await window.skyline.load("footer", el);
  return {entry, text: el.textContent};
}"""


async def test_an_open_page_keeps_its_revision_after_a_promotion(
    api: httpx.AsyncClient,
    edge: httpx.AsyncClient,
    s3: Any,
    settings: Settings,
    browser: Browser,
    tmp_path: Path,
) -> None:
    apartment = unique("skew")
    demo = demo_for(api, s3, settings, tmp_path, apartment)
    await demo.create_apartment()
    await demo.install_stable(header("1.0.0"))
    await demo.install_stable(footer("1.0.0"))

    api_url = f"http://{settings.api_host}:{settings.api_port}"
    loader = LoaderAsset.model_validate((await api.get("/loader")).json())
    page_html = shell_html(
        title="skew",
        apartment=apartment,
        manifest=manifest_url(settings, apartment),
        beacons=f"{api_url}/beacons",
        loader=loader,
        buildings=("header",),  # the footer's element comes later
    )
    shell_url = await asyncio.to_thread(publish_shell, s3, settings, apartment, page_html, "skew.html")

    context = await browser.new_context()
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url))

    first = await load_as(page, shell_url, USER, settings)
    started = first["revision"]
    assert first["buildings"]["header"]["unit"] == "header@1.0.0", first
    assert "footer" not in first["buildings"] or first["buildings"]["footer"]["state"] == "skipped"

    # A promotion while the page is open: the edge serves a newer manifest.
    await demo.install_stable(header("1.1.0"))
    await demo.install_stable(footer("1.1.0"))
    assert await manifest_revision(edge, settings, apartment) > int(started)

    manifest_reads = sum(1 for u in fetched if u.endswith("/manifest.json"))
    # 1. The unit's own lazy import: 1.0.0's chunk, still in storage.
    assert await lazy_click(page) == "1.0.0"
    assert any(u.endswith("/bundles/header/lazy-100.js") for u in fetched)
    assert not any(u.endswith("/lazy-110.js") for u in fetched)

    # 2. A building mounted later: the pinned revision's unit, with its load beacon.
    lazy = await page.evaluate(LAZY_FOOTER)
    assert lazy["entry"]["unit"] == "footer@1.0.0" and lazy["entry"]["state"] == "loaded", lazy
    assert lazy["entry"]["revision"] == started and lazy["text"] == "footer 1.0.0"
    assert await page.evaluate("window.skyline.report.lazy_beacon_status") == 202

    # 3. The bare specifier from the page's import map.
    imported = await page.evaluate(
        f"async () => (await import({json.dumps('@' + apartment + '/footer')})).version"
    )
    assert imported == "1.0.0"

    # 4. A second load of a building that was unmounted: the same version again.
    await page.evaluate("window.skyline.unmount('header')")
    again = await page.evaluate("async () => window.skyline.load('header')")
    assert again["unit"] == "header@1.0.0" and again["revision"] == started, again
    assert await page.inner_text('[data-skyline-building="header"]') == "header 1.0.0"

    # 5. A second start() of the loader module in this page: the pinned revision, no new read.
    second = await page.evaluate(
        """async ([url, config]) => (await import(url)).start(config, {})""",
        [loader.url, {"apartment": apartment, "manifest": manifest_url(settings, apartment)}],
    )
    assert second["revision"] == started and second["pinned"] is True, second
    assert second["buildings"]["header"]["unit"] == "header@1.0.0"
    assert sum(1 for u in fetched if u.endswith("/manifest.json")) == manifest_reads
    assert errors == []

    # A new page load gets the promoted versions everywhere.
    fresh = await load_as(page, shell_url, USER, settings)
    assert int(fresh["revision"]) > int(started)
    assert fresh["buildings"]["header"]["unit"] == "header@1.1.0"
    assert await lazy_click(page) == "1.1.0"
    later = await page.evaluate(LAZY_FOOTER)
    assert later["entry"]["unit"] == "footer@1.1.0" and later["text"] == "footer 1.1.0"
    await context.close()

    # Nothing the old revision named is past retention: gc would collect none of it.
    dry = await api.post("/storage/gc", json={"dry_run": True, "apartment": apartment})
    assert dry.status_code == 200, dry.text
    assert not [c for c in dry.json()["collect"] if c["apartment"] == apartment]
