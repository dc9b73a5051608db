"""What the browser refuses and what the loader reports: SRI mismatch, runtime errors.

The units here are stored by the test itself so one of them can be tampered
with: the manifest carries the SRI of the bytes that were built, storage
holds other bytes. Chromium must refuse to run them and the loader must
report load_error, counted once in skyline_unit_loads_total.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page

from adapters.storage import IMMUTABLE
from api.routes.loader import LOADER_SOURCE, LoaderAsset
from demo.shell import manifest_url, publish_shell, shell_html
from skyline.settings import Settings
from tests.browser.support import load_as, slot_text, sri, unit_loads
from tests.support.scenario import unique

pytestmark = pytest.mark.asyncio(loop_scope="session")

GOOD = "export function mount(el, ctx) { el.textContent = `ok ${ctx.unit}`; }\n"
BUILT = "export function mount(el) { el.textContent = 'catalog as built'; }\n"
TAMPERED = "window.__tampered = true;\nexport function mount(el) { el.textContent = 'tampered'; }\n"
THROWS_LATER = (
    "export function mount(el) {\n"
    "  el.textContent = 'footer';\n"
    "  setTimeout(() => { throw new Error('footer broke after mount'); }, 50);\n"
    "}\n"
)


def store_module(s3: Any, settings: Settings, key: str, body: str) -> str:
    s3.put_object(
        Bucket=settings.s3_bucket,
        Key=key,
        Body=body.encode(),
        ContentType="text/javascript; charset=utf-8",
        CacheControl=IMMUTABLE,
    )
    return settings.public_url(key)


def unit(name: str, version: str, url: str, checksum: str) -> dict[str, Any]:
    return {
        "id": f"{name}@{version}",
        "name": name,
        "version": version,
        "framework": "vanilla",
        "url": url,
        "checksum": checksum,
        "size": 100,
    }


async def shell_for(
    api: httpx.AsyncClient,
    settings: Settings,
    apartment: str,
    title: str,
    buildings: dict[str, tuple[str, str, str]],
    beacons: str | None,
) -> str:
    """Create an apartment whose buildings run `(unit name, url, checksum)` at 1.0.0; the
    HTML of its shell page with the published loader."""
    body = {
        "id": apartment,
        "actor": "tests",
        "apartment": {
            "name": title,
            "buildings": {
                b: {
                    "name": b,
                    "category": b,
                    "active_unit": f"{name}@1.0.0",
                    "units": {f"{name}@1.0.0": unit(name, "1.0.0", url, checksum)},
                }
                for b, (name, url, checksum) in buildings.items()
            },
        },
    }
    created = await api.post("/apartments", json=body)
    assert created.status_code == 201, created.text
    loader = LoaderAsset.model_validate((await api.get("/loader")).json())
    return shell_html(
        title=title,
        apartment=apartment,
        manifest=manifest_url(settings, apartment),
        beacons=beacons,
        loader=loader,
        buildings=tuple(buildings),
    )


async def first_visit(
    browser: Browser, shell_url: str
) -> tuple[BrowserContext, Page, list[str], dict[str, Any]]:
    """user-1's first visit in a new browser context: its page, console lines and report."""
    context = await browser.new_context()
    page = await context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    return context, page, console, await load_as(page, shell_url, "user-1")


async def test_wrong_hash_is_refused_by_the_browser_and_reported_as_load_error(
    api: httpx.AsyncClient, s3: Any, settings: Settings, browser: Browser
) -> None:
    apartment = unique("sri")
    prefix = f"bundles/{apartment}"
    good = store_module(s3, settings, f"{prefix}/header/index.js", GOOD)
    # Storage holds other bytes than the ones the manifest's SRI was computed from.
    tampered = store_module(s3, settings, f"{prefix}/catalog/index.js", TAMPERED)
    footer = store_module(s3, settings, f"{prefix}/footer/index.js", THROWS_LATER)
    buildings = {
        "header": ("header", good, sri(GOOD.encode())),
        "main": ("catalog", tampered, sri(BUILT.encode())),
        "footer": ("footer", footer, sri(THROWS_LATER.encode())),
    }
    beacons = f"http://{settings.api_host}:{settings.api_port}/beacons"
    page_html = await shell_for(api, settings, apartment, "SRI", buildings, beacons)
    shell_url = publish_shell(s3, settings, apartment, page_html)

    context, page, console, report = await first_visit(browser, shell_url)

    main = report["buildings"]["main"]
    assert main["state"] == "load_error" and main["unit"] == "catalog@1.0.0", main
    assert "refused or could not fetch" in main["attempts"][0]["error"]
    # Chromium blocked the bytes: they never ran and nothing was mounted.
    assert await page.evaluate("window.__tampered") is None
    assert await slot_text(page, "main") == ""
    assert await page.get_attribute('[data-skyline-building="main"]', "data-skyline-state") == "load_error"
    assert any("integrity" in line and tampered in line for line in console), console
    assert await slot_text(page, "header") == "ok header@1.0.0"
    assert report["beacon_status"] == 202

    # The footer mounted, then threw: one runtime_error beacon, attributed by script URL.
    await page.wait_for_function("() => window.skyline.report.runtime_beacon_status === 202", timeout=10_000)

    loads = await unit_loads(api, apartment)
    assert loads == {
        ("header", "header", "1.0.0", "loaded"): 1,
        ("main", "catalog", "1.0.0", "load_error"): 1,
        ("footer", "footer", "1.0.0", "loaded"): 1,
        ("footer", "footer", "1.0.0", "runtime_error"): 1,
    }
    await context.close()


async def test_the_loader_is_published_under_its_hash_and_served_immutable_by_the_edge(
    api: httpx.AsyncClient, edge: httpx.AsyncClient
) -> None:
    info = (await api.get("/loader")).json()
    source = await asyncio.to_thread(LOADER_SOURCE.read_bytes)
    assert info["key"].startswith("loader/skyline-loader.") and info["key"].endswith(".js")
    served = await edge.get(info["url"])
    assert served.status_code == 200
    assert served.content == source
    assert sri(served.content) == info["integrity"]
    assert "immutable" in served.headers["cache-control"]
    assert served.headers["content-type"].startswith("text/javascript")
    assert f'integrity="{info["integrity"]}"' in info["script"]
    redirect = await api.get("/loader.js")
    assert redirect.status_code == 307 and redirect.headers["location"] == info["url"]


async def test_a_page_whose_csp_blocks_data_modules_loads_with_entry_verification_only(
    api: httpx.AsyncClient, s3: Any, settings: Settings, browser: Browser
) -> None:
    """The integrity probe's modules are data: URLs; a CSP without `data:` refuses them, so the
    loader cannot learn whether the map's `integrity` is enforced: it says "entry" (only the
    entry's <script integrity> vouched for), remembers nothing, and the page still loads."""
    apartment = unique("csp")
    url = store_module(s3, settings, f"bundles/{apartment}/header/index.js", GOOD)
    header = {"header": ("header", url, sri(GOOD.encode()))}
    page_html = await shell_for(api, settings, apartment, "CSP", header, beacons=None)
    edge = settings.public_url("").rstrip("/")
    csp = f"script-src 'self' {edge} 'unsafe-inline'"
    page_html = page_html.replace(
        "<head>", f'<head>\n  <meta http-equiv="Content-Security-Policy" content="{csp}">', 1
    )
    shell_url = publish_shell(s3, settings, apartment, page_html)

    context, page, console, report = await first_visit(browser, shell_url)
    assert report["integrity"] == "entry", report
    assert report["buildings"]["header"]["state"] == "loaded", report
    assert await slot_text(page, "header") == "ok header@1.0.0"
    # the probe was refused by the CSP (not by SRI), and its answer was not kept
    assert any("Content Security Policy" in line and "data:" in line for line in console), console
    assert await page.evaluate("localStorage.getItem('skyline.integrity')") is None
    await context.close()
