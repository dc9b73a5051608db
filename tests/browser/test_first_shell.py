"""A first shell without writing one: the page the stack serves per apartment, in Chromium.

GET /shells lists every apartment's shell; GET /apartments/{a}/shell writes the
apartment's page next to its manifest and redirects to it at the edge: the loader
with its SRI, a slot for every building, a user id form. Chromium opens the API's
link, follows it, and the loader mounts the building's active unit as the user the
query (then the form) names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser

from api.routes.loader import LoaderAsset
from api.routes.shell import SHELL_PAGE
from api.shell_page import shell_key
from skyline.settings import Settings
from tests.browser.support import DONE, demo_for
from tests.browser.test_integrations import spa_unit
from tests.support.scenario import unique

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_the_stack_serves_a_shell_per_apartment_that_mounts_every_building(
    api: httpx.AsyncClient, s3: Any, settings: Settings, browser: Browser, tmp_path: Path
) -> None:
    apartment = unique("shl")
    listed = await api.get("/shells")
    assert listed.status_code == 200 and listed.headers["content-type"].startswith("text/html")
    assert f"/apartments/{apartment}/shell" not in listed.text

    missing = await api.get(f"/apartments/{apartment}/shell")
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "apartment", missing.text
    bad = await api.get("/apartments/Not_An_Id/shell")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_apartment", bad.text

    demo = demo_for(api, s3, settings, tmp_path, apartment)
    await demo.create_apartment()  # header, main, footer
    await demo.install_stable(spa_unit("header", "1.0.0"))

    api_url = f"http://{settings.api_host}:{settings.api_port}"
    listed = await api.get("/shells")
    assert f'href="{api_url}/apartments/{apartment}/shell"' in listed.text, listed.text

    # The API writes the page next to the manifest and sends the browser to the edge.
    redirect = await api.get(f"/apartments/{apartment}/shell", params={"skyline_user": "ada"})
    assert redirect.status_code == 307, redirect.text
    page_url = settings.public_url(shell_key(apartment, SHELL_PAGE))
    assert redirect.headers["location"] == f"{page_url}?skyline_user=ada"
    async with httpx.AsyncClient(timeout=10) as http:
        page = await http.get(page_url)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    loader = LoaderAsset.model_validate((await api.get("/loader")).json())
    assert loader.script_tag() in page.text
    for building in ("header", "main", "footer"):
        assert f'data-skyline-building="{building}"' in page.text
    assert f'"beacons": "{api_url}/beacons"' in page.text

    # Chromium opens the API's link: the loader mounts the header as user ada, then as the
    # user the page's form names.
    context = await browser.new_context()
    tab = await context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    await tab.goto(f"{api_url}/apartments/{apartment}/shell?skyline_user=ada")
    assert tab.url == f"{page_url}?skyline_user=ada"
    await tab.wait_for_function(DONE, timeout=20_000)
    report = await tab.evaluate("window.skyline.report")
    assert report["error"] is None and report["user"] == "ada", report
    assert report["buildings"]["header"]["state"] == "loaded", report["buildings"]
    assert await tab.inner_text('[data-skyline-building="header"]') == "header 1.0.0"
    assert await tab.input_value("#skyline-user") == "ada"
    assert "user ada" in await tab.inner_text("#skyline-status")

    await tab.fill("#skyline-user", "grace")
    async with tab.expect_navigation():
        await tab.click('#skyline-controls button[type="submit"]')
    await tab.wait_for_function(DONE, timeout=20_000)
    report = await tab.evaluate("window.skyline.report")
    assert report["user"] == "grace" and report["buildings"]["header"]["state"] == "loaded", report
    assert await tab.inner_text('[data-skyline-building="header"]') == "header 1.0.0"
    assert not errors, errors
    await context.close()
