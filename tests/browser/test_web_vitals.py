"""Web vitals per unit version, in Chromium: a canary that paints late raises its LCP histogram.

header@1.0.0 paints its largest element (a large block of text) as it mounts;
header@1.1.0, in canary at 50 % (a real rollout), mounts at once but paints the
same element 2 s later. The shell's loader is configured with the `web-vitals`
npm package's ESM build (published at the edge with its SRI): after the units
loaded it imports it, and each metric web-vitals reports becomes a signed
beacon of kind "vitals" for every unit version the page loaded, observed in
skyline_web_vitals_lcp_seconds{…,version}.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser
from prometheus_client.parser import text_string_to_metric_families

from api.routes.loader import LoaderAsset
from demo.shell import manifest_url, publish_shell
from demo.units import DemoUnit
from skyline.manifest import ApartmentManifest
from skyline.settings import Settings
from skyline.split import SplitUser, resolve
from tests.browser.bundler import WEB_VITALS_ESM
from tests.browser.support import DONE, bucket_key, demo_for
from tests.browser.test_integrations import publish_vendor
from tests.support.scenario import unique

pytestmark = pytest.mark.asyncio(loop_scope="session")

USERS = [f"vitals-{i:02d}" for i in range(10)]
DELAY_MS = 2000

HERO = """function hero(el, version) {
  const p = document.createElement("p");
  p.className = "hero";
  p.style.cssText = "font-size:40px;line-height:1.2;margin:0;width:90vw";
  p.textContent = `header ${version}: ` + "the largest element of this page ".repeat(12);
  el.replaceChildren(p);
}
"""


def header(version: str, delay_ms: int) -> DemoUnit:
    paint = f"setTimeout(() => hero(el, ctx.version), {delay_ms});" if delay_ms else "hero(el, ctx.version);"
    entry = HERO + f"export function mount(el, ctx) {{ {paint} }}\n"
    return DemoUnit("header", "header", version, {"index.js": entry})


def shell(apartment: str, manifest: str, beacons: str, loader: LoaderAsset, vitals: dict[str, str]) -> str:
    config = {"apartment": apartment, "manifest": manifest, "beacons": beacons, "vitals": vitals}
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>web vitals</title></head>
<body>
  <div data-skyline-building="header"></div>
  <script type="application/json" data-skyline>{json.dumps(config)}</script>
  {loader.script_tag()}
</body></html>
"""


HIDE = """() => {
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def lcp_series(text: str, apartment: str) -> dict[str, dict[str, float]]:
    """version -> {"count", "sum", "le=<bound>"...} of skyline_web_vitals_lcp_seconds."""
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if (
                not s.name.startswith("skyline_web_vitals_lcp_seconds")
                or s.labels.get("apartment") != apartment
            ):
                continue
            slot = out.setdefault(s.labels["version"], {})
            suffix = s.name.removeprefix("skyline_web_vitals_lcp_seconds_")
            slot[f"le={s.labels['le']}" if suffix == "bucket" else suffix] = s.value
    return out


async def test_a_canary_that_paints_late_raises_its_lcp_histogram(
    api: httpx.AsyncClient,
    edge: httpx.AsyncClient,
    s3: Any,
    settings: Settings,
    browser: Browser,
    shell_packages: Path,
    tmp_path: Path,
) -> None:
    apartment = unique("vitals")
    demo = demo_for(api, s3, settings, tmp_path, apartment)
    await demo.create_apartment()
    await demo.install_stable(header("1.0.0", 0))
    rollout_id, _ = await demo.start_rollout(
        header("1.1.0", DELAY_MS),
        {"kind": "canary", "steps": [50, 100], "bake_seconds": 900, "analysis_interval_seconds": 600},
        "a header that paints late",
    )
    await demo.wait(rollout_id, lambda s: s["weight"] == 50 and len(s["revisions"]) == 1, 60)
    manifest = ApartmentManifest.model_validate_json(
        (await edge.get(manifest_url(settings, apartment))).content
    )
    want = {u: resolve(manifest, apartment, SplitUser(id=u))["header"] for u in USERS}
    versions = {u: a.unit.version for u, a in want.items() if a.unit}
    assert set(versions.values()) == {"1.0.0", "1.1.0"}

    vitals_url, vitals_sri = await asyncio.to_thread(
        publish_vendor, s3, settings, "web-vitals", (shell_packages / WEB_VITALS_ESM).read_bytes()
    )
    loader = LoaderAsset.model_validate((await api.get("/loader")).json())
    api_url = f"http://{settings.api_host}:{settings.api_port}"
    page_html = shell(
        apartment,
        manifest_url(settings, apartment),
        f"{api_url}/beacons",
        loader,
        {"url": vitals_url, "integrity": vitals_sri},
    )
    shell_url = await asyncio.to_thread(publish_shell, s3, settings, apartment, page_html, "vitals.html")

    seen: dict[str, dict[str, Any]] = {}
    for user in USERS:
        context = await browser.new_context(viewport={"width": 1200, "height": 800})
        page = await context.new_page()
        await page.goto(f"{shell_url}?skyline_user={user}&skyline_bucket={bucket_key(settings, user)}")
        await page.wait_for_function(DONE, timeout=20_000)
        await page.wait_for_selector(".hero", timeout=DELAY_MS + 10_000)
        await page.wait_for_timeout(300)
        # An input ends LCP (web-vitals reports it then), and gives INP a value.
        await page.mouse.click(5, 5)
        await page.wait_for_function(
            "() => window.skyline.report.vitals_status && window.skyline.report.vitals_status.lcp",
            timeout=10_000,
        )
        # Hiding the page reports CLS (and INP), as a tab switch or navigation would.
        await page.evaluate(HIDE)
        await page.wait_for_function("() => window.skyline.report.vitals_status.cls", timeout=10_000)
        report = await page.evaluate("window.skyline.report")
        assert report["buildings"]["header"]["unit"] == f"header@{versions[user]}", report
        assert report["vitals_status"]["lcp"] == 202 and report["vitals_status"]["cls"] == 202, report
        seen[user] = report
        await context.close()

    for user, report in seen.items():
        lcp = report["vitals"]["lcp"]
        if versions[user] == "1.1.0":
            assert lcp >= DELAY_MS / 1000, (user, report["vitals"])
        else:
            assert lcp < DELAY_MS / 1000, (user, report["vitals"])

    found = lcp_series((await api.get("/metrics/")).text, apartment)
    for version in ("1.0.0", "1.1.0"):
        assert found[version]["count"] == sum(1 for v in versions.values() if v == version), found
    canary, stable = found["1.1.0"], found["1.0.0"]
    # Every canary page's LCP is above 2 s, in no bucket up to 2 s; the stable pages' are below.
    assert canary["le=2.0"] == 0 and stable["le=2.0"] == stable["count"], found
    assert canary["sum"] / canary["count"] > stable["sum"] / stable["count"] + 1.5, found
