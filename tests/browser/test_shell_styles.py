"""A unit's extracted CSS in shells without the loader, in Chromium on the real stack.

header@1.0.0 is a real esbuild bundle (`--bundle --format=esm --splitting`)
whose stylesheet esbuild extracted into `index.css`; it exports single-spa
lifecycles. footer@1.0.0 has no CSS. Two shells take
GET /apartments/{a}/importmap.json and nothing else from Skyline:

- a native import-map shell whose module does `import("@<a>/header")` and
  calls `mount`;
- a single-spa root config (single-spa 6 from npm, native ESM) registering both
  buildings with `app: () => import("@<a>/<building>")`.

Both must show the header styled (its computed background colour comes from
the extracted stylesheet), with no per-unit code in either shell. Then the
stylesheet is tampered with at the edge: Chromium refuses it by its SRI, the
import of `@<a>/header` rejects, and the header is not mounted at all (single-spa:
LOAD_ERROR) while the footer still mounts; a tampered generated entry module is
refused by the map's integrity.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser

from demo.shell import publish_shell
from demo.units import DemoUnit
from skyline.settings import Settings
from skyline.split import bucket_of
from tests.browser.bundler import SINGLE_SPA_ESM, build
from tests.browser.support import demo_for, sri
from tests.browser.test_bundle_integrity import stored, tamper
from tests.browser.test_integrations import BUCKET_JS, publish_vendor, spa_unit
from tests.support.scenario import unique

pytestmark = pytest.mark.asyncio(loop_scope="session")

BLUE_BG = "rgb(10, 20, 200)"
HEADER_JS = """import "./header.css";
import { banner } from "./banner.js";
export const version = "1.0.0";
export async function bootstrap(props) {}
export async function mount(props) {
  props.domElement.replaceChildren(banner(version));
  props.domElement.dataset.version = version;
}
export async function unmount(props) { props.domElement.replaceChildren(); }
"""
BANNER_JS = """export function banner(version) {
  const e = document.createElement("div");
  e.className = "sky-header";
  e.textContent = `header ${version}`;
  return e;
}
"""
HEADER_CSS = f".sky-header {{ background-color: {BLUE_BG}; padding: 4px; }}\n"

# What a shell reads back: the header's text and background, or why it is not there.
PROBE = """() => {
  const e = document.querySelector("#header .sky-header");
  return e ? [e.textContent, getComputedStyle(e).backgroundColor] : null;
}"""


def header_bundle(esbuild: Path, root: Path) -> DemoUnit:
    """esbuild's output for the header: index.js and the extracted index.css."""
    src = root / "src"
    src.mkdir(parents=True)
    (src / "index.js").write_text(HEADER_JS)
    (src / "banner.js").write_text(BANNER_JS)
    (src / "header.css").write_text(HEADER_CSS)
    out = build(esbuild, src, "index.js", root / "dist")
    files = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*") if p.is_file()}
    assert {"index.js", "index.css"} <= set(files), sorted(files)
    assert "rgb(10, 20, 200)" in files["index.css"] and "rgb(10, 20, 200)" not in files["index.js"]
    return DemoUnit("header", "header", "1.0.0", files)


def native_shell(api_url: str, apartment: str) -> str:
    """No loader, no per-unit code: the bucket-keyed map, then a module importing @<a>/header."""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>native import map</title>
<script>
{BUCKET_JS}
const APT = {json.dumps(apartment)};
const user = new URL(location.href).searchParams.get("user");
const buckets = ["header", "footer"].map((b) => `${{b}}:${{skylineBucket(user, APT, b)}}`).join(",");
fetch(`{api_url}/apartments/${{APT}}/importmap.json?buckets=${{buckets}}`, {{ cache: "no-cache" }})
  .then((r) => r.json())
  .then((map) => {{
    const s = document.createElement("script");
    s.type = "importmap";
    s.textContent = JSON.stringify(map);
    document.head.append(s);
    const app = document.createElement("script");
    app.type = "module";
    app.textContent = `
      const domElement = document.getElementById("header");
      import("@" + APT + "/header")
        .then((unit) => unit.mount({{ domElement, name: "@" + APT + "/header" }}))
        .then(() => {{ document.body.dataset.state = "mounted"; }},
              (err) => {{ document.body.dataset.state = "failed: " + err.message; }});`;
    document.head.append(app);
  }});
</script></head>
<body><div id="header"></div></body></html>
"""


def single_spa_shell(api_url: str, apartment: str, single_spa_url: str) -> str:
    """A single-spa root config on Skyline's map; window.singleSpa for the test to ask."""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>single-spa root config</title>
<script>
const APT = {json.dumps(apartment)};
const user = new URL(location.href).searchParams.get("user");
const url = `{api_url}/apartments/${{APT}}/importmap.json?user=${{encodeURIComponent(user)}}`;
fetch(url, {{ cache: "no-cache" }})
  .then((r) => r.json())
  .then((map) => {{
    const s = document.createElement("script");
    s.type = "importmap";
    s.textContent = JSON.stringify(map);
    document.head.append(s);
    const root = document.createElement("script");
    root.type = "module";
    root.textContent = `
      import * as singleSpa from "{single_spa_url}";
      window.singleSpa = singleSpa;
      for (const building of ["header", "footer"]) {{
        singleSpa.registerApplication({{
          name: "@" + APT + "/" + building,
          app: () => import("@" + APT + "/" + building),
          activeWhen: () => true,
          customProps: {{ domElement: document.getElementById(building) }},
        }});
      }}
      singleSpa.start();`;
    document.head.append(root);
  }});
</script></head>
<body><div id="header"></div><div id="footer"></div></body></html>
"""


async def test_extracted_css_styles_native_and_single_spa_shells_and_a_tampered_sheet_is_refused(
    api: httpx.AsyncClient,
    s3: Any,
    settings: Settings,
    browser: Browser,
    esbuild: Path,
    shell_packages: Path,
    tmp_path: Path,
) -> None:
    apartment = unique("css")
    demo = demo_for(api, s3, settings, tmp_path, apartment)
    await demo.create_apartment()
    await demo.install_stable(header_bundle(esbuild, tmp_path / "header"))
    await demo.install_stable(spa_unit("footer", "1.0.0"))
    manifest = (await api.get(f"/apartments/{apartment}/manifest")).json()
    buildings = manifest["apartments"][apartment]["buildings"]
    header = buildings["header"]["units"]["header@1.0.0"]
    footer = buildings["footer"]["units"]["footer@1.0.0"]
    css = header["files"]["index.css"]
    assert css["kind"] == "style"

    user = "css-user-1"
    api_url = f"http://{settings.api_host}:{settings.api_port}"
    single_spa_url, _ = await asyncio.to_thread(
        publish_vendor, s3, settings, "single-spa", (shell_packages / SINGLE_SPA_ESM).read_bytes()
    )
    native_url = await asyncio.to_thread(
        publish_shell, s3, settings, apartment, native_shell(api_url, apartment), "native.html"
    )
    spa_url = await asyncio.to_thread(
        publish_shell,
        s3,
        settings,
        apartment,
        single_spa_shell(api_url, apartment, single_spa_url),
        "spa.html",
    )

    async def native() -> dict[str, Any]:
        context = await browser.new_context()  # an empty cache: every file fetched afresh
        page = await context.new_page()
        console: list[str] = []
        page.on("console", lambda m: console.append(m.text))
        await page.goto(f"{native_url}?user={user}")
        await page.wait_for_function("() => document.body.dataset.state", timeout=20_000)
        out = {
            "state": await page.evaluate("document.body.dataset.state"),
            "header": await page.evaluate(PROBE),
            "links": await page.eval_on_selector_all(
                'link[rel="stylesheet"]', "els => els.map(e => [e.href, e.integrity, e.crossOrigin])"
            ),
            "console": console,
        }
        await context.close()
        return out

    async def single_spa(header_status: str) -> dict[str, Any]:
        context = await browser.new_context()
        page = await context.new_page()
        console: list[str] = []
        page.on("console", lambda m: console.append(m.text))
        await page.goto(f"{spa_url}?user={user}")
        await page.wait_for_function(
            f"""() => window.singleSpa
              && singleSpa.getAppStatus("@{apartment}/header") === "{header_status}"
              && singleSpa.getAppStatus("@{apartment}/footer") === "MOUNTED"
              && document.getElementById("footer").textContent""",
            timeout=20_000,
        )
        out = {
            "header": await page.evaluate(PROBE),
            "header_text": await page.inner_text("#header"),
            "footer": await page.inner_text("#footer"),
            "console": console,
        }
        await context.close()
        return out

    # Styled in both, from the extracted stylesheet.
    seen = await native()
    assert seen["state"] == "mounted", seen
    assert seen["header"] == ["header 1.0.0", BLUE_BG], seen
    assert seen["links"] == [[css["url"], css["integrity"], "anonymous"]], seen["links"]
    spa = await single_spa("MOUNTED")
    assert spa["header"] == ["header 1.0.0", BLUE_BG], spa
    assert spa["footer"] == "footer 1.0.0"

    # The map: the header behind a generated entry module at the edge, verified by the map's
    # integrity like the unit's own modules; the footer (no CSS) exactly as before.
    buckets = ",".join(f"{b}:{bucket_of(user, apartment, b)}" for b in ("header", "main", "footer"))
    answer = await api.get(f"/apartments/{apartment}/importmap.json", params={"buckets": buckets})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    entry_url = body["imports"][f"@{apartment}/header"]
    assert entry_url.startswith(settings.public_url("loader/entries/")), body
    entry_bytes = await asyncio.to_thread(stored, s3, settings, entry_url)
    assert body["integrity"][entry_url] == sri(entry_bytes)
    assert css["url"].encode() in entry_bytes and css["integrity"].encode() in entry_bytes
    assert body["integrity"][header["url"]] == header["checksum"]
    assert body["imports"][f"@{apartment}/footer"] == footer["url"]
    by_user = await api.get(f"/apartments/{apartment}/importmap.json", params={"user": user})
    assert by_user.json() == body

    # A tampered stylesheet: refused by its SRI, so the header is not mounted at all in
    # either shell (a unit never shows without its verified styles); the footer still is.
    original = await asyncio.to_thread(stored, s3, settings, css["url"])
    forged = original.replace(b"10, 20, 200", b"200, 0, 0")
    assert forged != original
    await asyncio.to_thread(tamper, s3, settings, css["url"], forged, "text/css; charset=utf-8")
    try:
        refused = await native()
        assert refused["state"].startswith("failed: ") and css["url"] in refused["state"], refused
        assert refused["header"] is None, refused
        assert refused["links"] == [], refused["links"]  # the entry removed the refused link
        assert any("integrity" in line and css["url"] in line for line in refused["console"]), refused
        spa = await single_spa("LOAD_ERROR")
        assert spa["header"] is None and spa["header_text"] == "", spa
        assert spa["footer"] == "footer 1.0.0"
        assert any("integrity" in line and css["url"] in line for line in spa["console"]), spa
    finally:
        await asyncio.to_thread(tamper, s3, settings, css["url"], original, "text/css; charset=utf-8")
    assert (await native())["header"] == ["header 1.0.0", BLUE_BG]

    # The generated entry module is verified too: other bytes behind its URL are refused.
    await asyncio.to_thread(
        tamper, s3, settings, entry_url, entry_bytes + b"\n// tampered\n", "text/javascript; charset=utf-8"
    )
    try:
        refused = await native()
        assert refused["state"].startswith("failed: ") and refused["header"] is None, refused
        assert any("integrity" in line and entry_url in line for line in refused["console"]), refused
    finally:
        js = "text/javascript; charset=utf-8"
        await asyncio.to_thread(tamper, s3, settings, entry_url, entry_bytes, js)
