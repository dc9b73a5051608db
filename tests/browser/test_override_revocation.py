"""Issue 23 item 8 in Chromium: a revoked override link no longer forces its version.

header@1.0.0 is active and header@1.1.0 staged at 0 % by a real blue-green rollout (as in
test_overrides.py). A QA browser opens a deployer's override link and gets 1.1.0; the deployer
revokes it (POST /overrides/revoke, what `skyline rollout revoke-preview` sends); the same
browser's next page (the token kept in localStorage) and a fresh browser opening the very same
link both get 1.0.0, and the loader forgets the token. Another override of the same version,
not revoked, still works.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser

from api.routes.loader import LoaderAsset
from demo.shell import manifest_url, publish_shell, shell_html
from skyline.settings import Settings
from tests.browser.support import demo_for
from tests.browser.test_overrides import header, load
from tests.support.scenario import unique

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_revoked_override_link_no_longer_forces_the_version(
    api: httpx.AsyncClient, s3: Any, settings: Settings, browser: Browser, tmp_path: Path
) -> None:
    apartment = unique("rvk")
    demo = demo_for(api, s3, settings, tmp_path, apartment)
    await demo.create_apartment()
    await demo.install_stable(header("1.0.0"))
    rollout_id, _ = await demo.start_rollout(
        header("1.1.0"),
        {"kind": "blue_green", "preview_seconds": 3600, "bake_seconds": 900},
        "staged at 0 %, nobody gets it",
    )
    await demo.wait(rollout_id, lambda s: len(s["revisions"]) >= 1, 60)
    loader = LoaderAsset.model_validate((await api.get("/loader")).json())
    page = shell_html(
        title="revocation",
        apartment=apartment,
        manifest=manifest_url(settings, apartment),
        beacons=f"http://{settings.api_host}:{settings.api_port}/beacons",
        loader=loader,
        buildings=("header",),
    )
    shell = await asyncio.to_thread(publish_shell, s3, settings, apartment, page, "revocation.html")

    async def override(ttl: float) -> dict[str, Any]:
        body = {"apartment": apartment, "building": "header", "version": "1.1.0", "shell_url": shell}
        issued = await api.post("/overrides", json={**body, "ttl_seconds": ttl})
        assert issued.status_code == 201, issued.text
        answer: dict[str, Any] = issued.json()
        return answer

    revoked, kept = await override(3600), await override(1800)  # two expiries: two tokens

    qa = await browser.new_context()
    seen = await load(qa, f"{revoked['link']}&skyline_user=qa-1")
    assert (seen["buildings"]["header"]["unit"], seen["text"]) == ("header@1.1.0", "header 1.1.0")
    assert json.loads(seen["stored"]) == [revoked["token"]]

    answer = await api.post("/overrides/revoke", json={"token": revoked["link"]})
    assert answer.status_code == 200, answer.text

    # The same browser's next page: the stored token is refused, forgotten, the split applies.
    seen = await load(qa, f"{shell}?skyline_user=qa-1")
    assert seen["buildings"]["header"]["unit"] == "header@1.0.0", seen["buildings"]
    assert seen["text"] == "header 1.0.0" and seen["overrides"] == {} and seen["stored"] is None
    # A fresh browser opening the very link.
    fresh = await browser.new_context()
    seen = await load(fresh, f"{revoked['link']}&skyline_user=qa-2")
    assert seen["buildings"]["header"]["unit"] == "header@1.0.0" and seen["text"] == "header 1.0.0"
    assert seen["stored"] is None
    # The other override of the same version was not revoked.
    other = await browser.new_context()
    seen = await load(other, f"{kept['link']}&skyline_user=qa-3")
    assert (seen["buildings"]["header"]["unit"], seen["text"]) == ("header@1.1.0", "header 1.1.0")
    for context in (qa, fresh, other):
        await context.close()
    await api.post(f"/rollouts/{rollout_id}/rollback", json={"actor": "tests"})
