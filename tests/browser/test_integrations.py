"""Shells teams already have, in Chromium on the real stack: native import maps, single-spa.

One apartment, two buildings whose units export single-spa lifecycles
(bootstrap, mount, unmount, update): footer@1.0.0 stable, header@1.0.0 stable
with header@1.1.0 in canary at 50 % (a real rollout). Three shells load them:

- a page without the loader: a classic script computes the user's buckets,
  fetches GET /apartments/{a}/importmap.json?buckets=…, adds the map, and the
  page's module does `import { version } from "@<a>/header"`;
- the loader's shell: the loader calls the lifecycles (bootstrap + mount with
  single-spa props), and a page module imports "@<a>/header" once
  `window.skyline.ready` says the map is in; teardown through
  `window.skyline.unmount()`;
- a single-spa root config (the real `single-spa` package from npm, native
  ESM, no SystemJS) registering both applications with
  `app: () => import("@<a>/header")` from the map of GET …/importmap.json?user=….

Each user must get what skyline.split says; after an emergency rollback the
next page load of every canary user gets the stable unit in all three.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page

from adapters.storage import IMMUTABLE
from api.routes.loader import LoaderAsset
from demo.shell import manifest_url, publish_shell, shell_html
from demo.units import DemoUnit
from skyline.manifest import ApartmentManifest
from skyline.settings import Settings
from skyline.split import SplitUser, bucket_of, resolve
from tests.browser.bundler import SINGLE_SPA_ESM
from tests.browser.support import DONE, bucket_key, demo_for, sri
from tests.support.scenario import unique

pytestmark = pytest.mark.asyncio(loop_scope="session")

USERS = [f"spa-user-{i:02d}" for i in range(12)]


def spa_unit(building: str, version: str) -> DemoUnit:
    """A unit exporting single-spa lifecycles only (no Skyline `mount(el, ctx)`)."""
    entry = f"""const VERSION = {json.dumps(version)};
const calls = (globalThis.__calls ||= []);
export const version = VERSION;
export async function bootstrap(props) {{ calls.push(["bootstrap", props.name, VERSION]); }}
export async function mount(props) {{
  props.domElement.textContent = `{building} ${{VERSION}}`;
  props.domElement.dataset.version = VERSION;
  calls.push(["mount", props.name, VERSION, props.domElement.id || props.domElement.dataset.skylineBuilding]);
}}
export async function unmount(props) {{
  props.domElement.textContent = "";
  calls.push(["unmount", props.name, VERSION]);
}}
export async function update(props) {{ calls.push(["update", props.name, props.note || null]); }}
"""
    return DemoUnit(building, building, version, {"index.js": entry})


def publish_vendor(s3: Any, settings: Settings, name: str, body: bytes) -> tuple[str, str]:
    """An npm package's ESM build at the edge, immutable under its hash: (url, SRI)."""
    key = f"loader/vendor/{name}.{hashlib.sha256(body).hexdigest()[:16]}.js"
    s3.put_object(
        Bucket=settings.s3_bucket,
        Key=key,
        Body=body,
        ContentType="text/javascript; charset=utf-8",
        CacheControl=IMMUTABLE,
    )
    return settings.public_url(key), sri(body)


# The user's bucket per building, as skyline/split.py computes it (FNV-1a 32 % 10000).
BUCKET_JS = """function skylineBucket(user, apartment, building) {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(`${user}:${apartment}:${building}`)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % 10000;
}"""


def native_shell(api_url: str, apartment: str) -> str:
    """No loader: fetch the bucket-keyed map, add it, then run a module importing @<a>/header."""
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
    app.textContent = `import {{ version }} from "@${{APT}}/header";
      document.body.dataset.header = version;`;
    document.head.append(app);
  }});
</script></head>
<body></body></html>
"""


def single_spa_shell(api_url: str, apartment: str, single_spa_url: str) -> str:
    """A single-spa root config: applications from Skyline's import map, native ESM."""
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
      import {{ registerApplication, start }} from "{single_spa_url}";
      for (const building of ["header", "footer"]) {{
        registerApplication({{
          name: "@" + APT + "/" + building,
          app: () => import("@" + APT + "/" + building),
          activeWhen: () => true,
          customProps: {{ domElement: document.getElementById(building) }},
        }});
      }}
      start();`;
    document.head.append(root);
  }});
</script></head>
<body><div id="header"></div><div id="footer"></div></body></html>
"""


# After the loader (module scripts run in order): a page module using the bare specifier.
PAGE_MODULE = """<script type="module">
  const map = await window.skyline.ready;
  const { version } = await import(Object.keys(map.imports).find((s) => s.endsWith("/header")));
  document.body.dataset.header = version;
</script>
"""


async def open_page(page: Page, url: str, ready: str) -> None:
    await page.goto(url)
    await page.wait_for_function(ready, timeout=20_000)


async def test_native_import_map_and_single_spa_with_a_canary_and_a_rollback(
    api: httpx.AsyncClient,
    edge: httpx.AsyncClient,
    s3: Any,
    settings: Settings,
    browser: Browser,
    shell_packages: Path,
    tmp_path: Path,
) -> None:
    apartment = unique("eco")
    demo = demo_for(api, s3, settings, tmp_path, apartment)
    await demo.create_apartment()
    await demo.install_stable(spa_unit("header", "1.0.0"))
    await demo.install_stable(spa_unit("footer", "1.0.0"))
    rollout_id, _ = await demo.start_rollout(
        spa_unit("header", "1.1.0"),
        {"kind": "canary", "steps": [50, 100], "bake_seconds": 900, "analysis_interval_seconds": 600},
        "single-spa header at 50%",
    )
    await demo.wait(rollout_id, lambda s: s["weight"] == 50 and len(s["revisions"]) == 1, 60)

    manifest = ApartmentManifest.model_validate_json(
        (await edge.get(manifest_url(settings, apartment))).content
    )
    want = {u: resolve(manifest, apartment, SplitUser(id=u))["header"] for u in USERS}
    canary_users = [u for u, a in want.items() if a.reason == "canary"]
    assert canary_users and len(canary_users) < len(USERS)

    # The endpoint: keyed by buckets, identical for every user of a variant; ETag, 304, CORS.
    api_url = f"http://{settings.api_host}:{settings.api_port}"
    answers: dict[str, Any] = {}
    for user in USERS:
        buckets = ",".join(f"{b}:{bucket_of(user, apartment, b)}" for b in ("header", "footer"))
        r = await api.get(f"/apartments/{apartment}/importmap.json", params={"buckets": buckets})
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "public, max-age=5"
        assert r.headers["access-control-allow-origin"] == "*"
        assert r.headers["etag"].startswith(f'"{manifest.version}-')
        variant = r.headers["skyline-import-map-variant"]
        assert variant == ("canary:header" if user in canary_users else "stable")
        body = r.json()
        assert answers.setdefault(variant, body) == body
        assert body["imports"][f"@{apartment}/header"] == want[user].unit.url  # type: ignore[union-attr]
        assert body["integrity"][want[user].unit.url] == want[user].unit.checksum  # type: ignore[union-attr]
        again = await api.get(
            f"/apartments/{apartment}/importmap.json",
            params={"buckets": buckets},
            headers={"If-None-Match": r.headers["etag"]},
        )
        assert again.status_code == 304
    assert len(answers) == 2
    by_user = await api.get(f"/apartments/{apartment}/importmap.json", params={"user": canary_users[0]})
    assert by_user.json() == answers["canary:header"] and by_user.headers["cache-control"].startswith(
        "private"
    )
    bad = await api.get(f"/apartments/{apartment}/importmap.json", params={"buckets": "header:10000"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "buckets"
    assert (await api.get("/apartments/nope-nope/importmap.json")).status_code == 404

    # The three shells, published next to the manifest (the edge serves them).
    modules = shell_packages
    single_spa_url, _ = await asyncio.to_thread(
        publish_vendor, s3, settings, "single-spa", (modules / SINGLE_SPA_ESM).read_bytes()
    )
    loader = LoaderAsset.model_validate((await api.get("/loader")).json())
    loader_page = shell_html(
        title="loader + single-spa units",
        apartment=apartment,
        manifest=manifest_url(settings, apartment),
        beacons=f"{api_url}/beacons",
        loader=loader,
        buildings=("header", "footer"),
    ).replace("</body>", PAGE_MODULE + "</body>")
    native_url = await asyncio.to_thread(
        publish_shell, s3, settings, apartment, native_shell(api_url, apartment), "native.html"
    )
    loader_url = await asyncio.to_thread(publish_shell, s3, settings, apartment, loader_page, "loader.html")
    spa_url = await asyncio.to_thread(
        publish_shell,
        s3,
        settings,
        apartment,
        single_spa_shell(api_url, apartment, single_spa_url),
        "spa.html",
    )

    context = await browser.new_context()
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    async def native(user: str) -> str:
        await open_page(page, f"{native_url}?user={user}", "() => document.body.dataset.header")
        return str(await page.evaluate("document.body.dataset.header"))

    async def with_loader(user: str) -> dict[str, Any]:
        url = f"{loader_url}?skyline_user={user}&skyline_bucket={bucket_key(settings, user)}"
        await open_page(page, url, f"{DONE} && document.body.dataset.header")
        report = await page.evaluate("window.skyline.report")
        assert report["error"] is None and report["integrity"] == "importmap", report
        return {
            "report": report,
            "imported": await page.evaluate("document.body.dataset.header"),
            "text": await page.inner_text('[data-skyline-building="header"]'),
            "calls": await page.evaluate("globalThis.__calls"),
        }

    async def single_spa(user: str) -> tuple[str, str, list[Any]]:
        await open_page(
            page,
            f"{spa_url}?user={user}",
            "() => document.getElementById('header').dataset.version && "
            "document.getElementById('footer').dataset.version",
        )
        header = await page.inner_text("#header")
        footer = await page.inner_text("#footer")
        return header, footer, await page.evaluate("globalThis.__calls")

    for user in USERS:
        unit = want[user].unit
        assert unit is not None
        # 1. Native import map, no loader: the page's module gets the user's unit.
        assert await native(user) == unit.version, user

        # 2a. The loader drives the single-spa lifecycles; the page module imports the same unit.
        seen = await with_loader(user)
        header = seen["report"]["buildings"]["header"]
        assert (header["unit"], header["state"]) == (unit.id, "loaded"), seen["report"]
        assert seen["report"]["importmap"]["imports"][f"@{apartment}/header"] == unit.url
        assert seen["imported"] == unit.version and seen["text"] == f"header {unit.version}"
        name = f"@{apartment}/header"
        assert ["bootstrap", name, unit.version] in seen["calls"]
        assert ["mount", name, unit.version, "header"] in seen["calls"]
        assert seen["report"]["beacon_status"] == 202

        # 2b. single-spa itself (the npm package) mounts both applications from the map.
        header_text, footer_text, calls = await single_spa(user)
        assert (header_text, footer_text) == (f"header {unit.version}", "footer 1.0.0"), user
        assert ["mount", name, unit.version, "header"] in calls
        assert ["mount", f"@{apartment}/footer", "1.0.0", "footer"] in calls

    # Teardown and update through the loader: single-spa's unmount and update lifecycles.
    await with_loader(canary_users[0])
    assert await page.evaluate("window.skyline.update('header', {note: 'hello'})") is True
    await page.evaluate("window.skyline.unmount()")
    calls = await page.evaluate("globalThis.__calls")
    name = f"@{apartment}/header"
    assert ["update", name, "hello"] in calls
    assert ["unmount", name, "1.1.0"] in calls and ["unmount", f"@{apartment}/footer", "1.0.0"] in calls
    assert await page.inner_text('[data-skyline-building="header"]') == ""

    # Emergency rollback: the next page load gets the stable unit. The loader reads the
    # manifest on every page; the endpoint through a 1 s in-process cache.
    response = await api.post(f"/rollouts/{rollout_id}/rollback", json={"actor": "tests", "reason": "pager"})
    assert response.status_code == 200 and response.json()["state"] == "rolled_back", response.text
    for user in canary_users:
        seen = await with_loader(user)
        assert seen["report"]["buildings"]["header"]["unit"] == "header@1.0.0"
        assert seen["imported"] == "1.0.0"
    await asyncio.sleep(1.1)
    for user in canary_users:
        assert await native(user) == "1.0.0"
        assert (await single_spa(user))[0] == "header 1.0.0"
    assert not errors, errors
    await context.close()
