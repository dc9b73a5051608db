"""Module Federation 2 in Chromium on the real stack: a host built once, one remote in canary.

The host is built once with esbuild from the real `@module-federation/runtime`
(npm, tests/browser/npm) and Skyline's plugin (loader/skyline-mf-plugin.js); it
names the remote `checkout` with an entry that is not Skyline's. The remote is a
hand-written container in the runtime's "module" remote format (`init`/`get`,
an expose chunk it imports relatively) with an mf-manifest.json, published by
real rollouts: checkout@1.0.0 active, checkout@1.1.0 in canary at 30 %.

Each user must get the version skyline.split gives building `main` (the bucket
the loader would use), from the entry the manifest names and nothing else; each
page's load is a beacon counted in skyline_unit_loads_total; after an emergency
rollback the next page load of every canary user gets 1.0.0, with the host
unchanged. Then a broken canary (its expose chunk was never deployed) is
reported as a load_error and the host falls back to the stable remote.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page

from demo.shell import manifest_url, publish_shell
from demo.units import DemoUnit
from skyline.manifest import ApartmentManifest
from skyline.settings import Settings
from skyline.split import SplitUser, bucket_of, in_percentage, resolve
from tests.browser.support import bucket_key, demo_for, unit_loads
from tests.browser.test_bundle_integrity import tamper
from tests.browser.test_integrations import publish_vendor
from tests.support.scenario import unique

pytestmark = pytest.mark.asyncio(loop_scope="session")

PLUGIN = Path(__file__).resolve().parents[2] / "loader" / "skyline-mf-plugin.js"
USERS = [f"mf-user-{i:02d}" for i in range(12)]
# What the host was built with: not Skyline's URL, so every load the test sees went through the plugin.
BUILT_IN_ENTRY = "https://remotes.example/checkout/remoteEntry.js"


def mf_remote(version: str, *, missing_chunk: bool = False) -> DemoUnit:
    """A Module Federation 2 remote: mf-manifest.json, a "module" container entry, an expose chunk."""
    chunk = f"__federation_expose_Cart-{hashlib.sha256(version.encode()).hexdigest()[:8].upper()}.js"
    imported = "__federation_expose_Cart-NEVERDEPLOYED.js" if missing_chunk else chunk
    entry = f"""const VERSION = {json.dumps(version)};
const calls = (globalThis.__remoteCalls ||= []);
export async function init(shareScope, initScope, options) {{
  calls.push(["init", VERSION, typeof shareScope]);
}}
export async function get(module) {{
  if (module !== "./Cart") throw new Error("checkout has no " + module);
  const m = await import("./{imported}");
  return () => m;
}}
"""
    cart = f"""export const version = {json.dumps(version)};
export function render(el) {{ el.textContent = "cart " + version; el.dataset.version = version; }}
"""
    manifest = {
        "id": "checkout",
        "name": "checkout",
        "metaData": {
            "name": "checkout",
            "type": "app",
            "buildInfo": {"buildVersion": version, "buildName": "checkout"},
            "remoteEntry": {"name": "remoteEntry.js", "path": "", "type": "module"},
            "globalName": "checkout",
            "publicPath": "auto",
        },
        "shared": [],
        "remotes": [],
        "exposes": [{"id": "checkout:Cart", "name": "Cart", "path": "./Cart"}],
    }
    return DemoUnit(
        "main",
        "checkout",
        version,
        {"mf-manifest.json": json.dumps(manifest), "remoteEntry.js": entry, chunk: cart},
    )


def build_host(esbuild: Path, modules: Path, out: Path) -> bytes:
    """The host's one build: the real runtime and Skyline's plugin, bundled by esbuild."""
    out.mkdir(parents=True, exist_ok=True)
    source = out / "host-entry.js"
    source.write_text(
        'export { createInstance } from "@module-federation/runtime";\n'
        f"export {{ skylineFederation }} from {json.dumps(str(PLUGIN))};\n"
    )
    subprocess.run(
        [
            str(esbuild),
            str(source),
            "--bundle",
            "--format=esm",
            "--platform=browser",
            "--define:process.env.NODE_ENV='production'".replace("'", '"'),
            f"--outfile={out / 'host.js'}",
            "--log-level=warning",
        ],
        cwd=out,
        env={**os.environ, "NODE_PATH": str(modules)},
        check=True,
        timeout=120,
    )
    return (out / "host.js").read_bytes()


def host_page(
    host_url: str,
    apartment: str,
    manifest: str,
    beacons: str,
    remotes: list[dict[str, str]] | None = None,
    request: str = "checkout/Cart",
) -> str:
    """The host: its built-in remotes, Skyline's plugin, one loadRemote rendered into #cart."""
    config = {"apartment": apartment, "manifest": manifest, "beacons": beacons}
    built_in = remotes or [{"name": "checkout", "entry": BUILT_IN_ENTRY, "type": "module"}]
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Module Federation host</title></head>
<body><div id="cart"></div>
<script type="module">
  import {{ createInstance, skylineFederation }} from {json.dumps(host_url)};
  const user = new URL(location.href).searchParams.get("user");
  const plugin = skylineFederation({{ ...{json.dumps(config)}, user: {{ id: user }} }});
  const mf = createInstance({{ name: "mf_host", remotes: {json.dumps(built_in)}, plugins: [plugin] }});
  const state = (window.__mf = {{ plugin, done: false }});
  try {{
    const cart = await mf.loadRemote({json.dumps(request)});
    cart.render(document.getElementById("cart"));
    state.version = cart.version;
  }} catch (err) {{
    state.error = String(err && err.message);
  }}
  state.done = true;
</script></body></html>
"""


async def load(page: Page, url: str, user: str, settings: Settings | None = None) -> dict[str, Any]:
    bucket = f"&skyline_bucket={bucket_key(settings, user)}" if settings is not None else ""
    await page.goto(f"{url}?user={user}{bucket}")
    await page.wait_for_function(
        "() => window.__mf && window.__mf.done && window.__mf.plugin.report.beacon_status.length > 0",
        timeout=20_000,
    )
    state: dict[str, Any] = await page.evaluate(
        """() => ({
          version: window.__mf.version || null,
          error: window.__mf.error || null,
          report: window.__mf.plugin.report,
          text: document.getElementById("cart").textContent,
          fetched: performance.getEntriesByType("resource").map((e) => e.name),
        })"""
    )
    return state


def split_apartment(percentage: float) -> str:
    """A fresh apartment id whose split puts some USERS in the canary at `percentage` and some
    not. The buckets hash the apartment's id, so a random id left all twelve outside a 30 %
    canary about once in 70 runs (0.7^12), and the test had nothing to tell apart."""
    while True:
        apartment = unique("mf")
        inside = sum(in_percentage(bucket_of(u, apartment, "main"), percentage) for u in USERS)
        if 0 < inside < len(USERS):
            return apartment


async def test_a_host_gets_the_remote_version_of_its_bucket_and_a_rollback_without_a_rebuild(
    api: httpx.AsyncClient,
    edge: httpx.AsyncClient,
    s3: Any,
    settings: Settings,
    browser: Browser,
    esbuild: Path,
    shell_packages: Path,
    tmp_path: Path,
) -> None:
    apartment = split_apartment(30)
    demo = demo_for(api, s3, settings, tmp_path, apartment)
    await demo.create_apartment()
    await demo.install_stable(mf_remote("1.0.0"))
    rollout_id, _ = await demo.start_rollout(
        mf_remote("1.1.0"),
        {"kind": "canary", "steps": [30, 100], "bake_seconds": 900, "analysis_interval_seconds": 600},
        "checkout remote at 30%",
    )
    await demo.wait(rollout_id, lambda s: s["weight"] == 30 and len(s["revisions"]) == 1, 60)

    manifest = ApartmentManifest.model_validate_json(
        (await edge.get(manifest_url(settings, apartment))).content
    )
    main = manifest.apartment(apartment).buildings["main"]
    for key in ("checkout@1.0.0", "checkout@1.1.0"):
        published = main.units[key]
        # the container entry of mf-manifest.json, renamed by content in the shared directory
        assert published.metadata.entry == "remoteEntry.js"
        assert "/bundles/checkout/remoteEntry." in published.url
        assert published.federation is not None
        assert (published.federation.name, published.federation.type, published.federation.exposes) == (
            "checkout",
            "module",
            ["./Cart"],
        )
    want = {u: resolve(manifest, apartment, SplitUser(id=u))["main"] for u in USERS}
    canary_users = [u for u, a in want.items() if a.reason == "canary"]
    assert canary_users and len(canary_users) < len(USERS)

    host = await asyncio.to_thread(build_host, esbuild, shell_packages, tmp_path / "host")
    host_url, _ = await asyncio.to_thread(publish_vendor, s3, settings, "mf-host", host)
    api_url = f"http://{settings.api_host}:{settings.api_port}"
    page_url = await asyncio.to_thread(
        publish_shell,
        s3,
        settings,
        apartment,
        host_page(host_url, apartment, manifest_url(settings, apartment), f"{api_url}/beacons"),
        "mf-host.html",
    )

    context = await browser.new_context()
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    for user in USERS:
        unit = want[user].unit
        assert unit is not None
        seen = await load(page, page_url, user, settings)
        assert seen["error"] is None, seen
        assert (seen["version"], seen["text"]) == (unit.version, f"cart {unit.version}"), user
        remote = seen["report"]["remotes"]["checkout"]
        # the loader's bucket of building main, and the unit the manifest gives it
        assert remote["bucket"] == bucket_of(user, apartment, "main") == want[user].bucket
        assert (remote["reason"], remote["unit"], remote["state"]) == (want[user].reason, unit.id, "loaded")
        assert unit.url in seen["fetched"] and BUILT_IN_ENTRY not in seen["fetched"]
        assert seen["report"]["beacon_status"] == [202], seen["report"]
        (sent,) = seen["report"]["beacons"]
        assert (sent["building"], sent["unit"], sent["version"], sent["outcome"]) == (
            "main",
            "checkout",
            unit.version,
            "loaded",
        )
        assert sent["load_seconds"] > 0

    # Every page load is a beacon the canary's analysis counts.
    loads = await unit_loads(api, apartment)
    assert loads.get(("main", "checkout", "1.1.0", "loaded")) == len(canary_users)
    assert loads.get(("main", "checkout", "1.0.0", "loaded")) == len(USERS) - len(canary_users)

    # Emergency rollback: the same host, on the next page load, gets the stable remote.
    response = await api.post(f"/rollouts/{rollout_id}/rollback", json={"actor": "tests", "reason": "pager"})
    assert response.status_code == 200 and response.json()["state"] == "rolled_back", response.text
    for user in canary_users:
        seen = await load(page, page_url, user, settings)
        assert seen["version"] == "1.0.0" and seen["report"]["remotes"]["checkout"]["reason"] == "stable"

    # A broken canary (its expose chunk was never deployed): a load_error, and the host
    # falls back to the stable remote in the same page.
    broken_id, _ = await demo.start_rollout(
        mf_remote("1.2.0", missing_chunk=True),
        {"kind": "canary", "steps": [30, 100], "bake_seconds": 900, "analysis_interval_seconds": 600},
        "a broken checkout",
    )
    await demo.wait(broken_id, lambda s: s["weight"] == 30 and len(s["revisions"]) == 1, 60)
    manifest = ApartmentManifest.model_validate_json(
        (await edge.get(manifest_url(settings, apartment))).content
    )
    broken_users = [
        u for u in USERS if resolve(manifest, apartment, SplitUser(id=u))["main"].reason == "canary"
    ]
    assert broken_users
    for user in broken_users:
        seen = await load(page, page_url, user, settings)
        assert seen["error"] is None and seen["version"] == "1.0.0", seen
        remote = seen["report"]["remotes"]["checkout"]
        assert [(a["unit"], a["outcome"]) for a in remote["attempts"]] == [
            ("checkout@1.2.0", "load_error"),
            ("checkout@1.0.0", "loaded"),
        ]
        assert all(s == 202 for s in seen["report"]["beacon_status"]), seen["report"]
    loads = await unit_loads(api, apartment)
    assert loads.get(("main", "checkout", "1.2.0", "load_error")) == len(broken_users)
    await api.post(f"/rollouts/{broken_id}/rollback", json={"actor": "tests", "reason": "broken"})
    assert not [e for e in errors if "NEVERDEPLOYED" not in e], errors
    await context.close()


def classic_remote(version: str) -> DemoUnit:
    """A remote whose container entry is a classic script setting a global ("var" remote type)."""
    entry = f"""var nav_remote = (function () {{
  var VERSION = {json.dumps(version)};
  return {{
    init: async function (shareScope, initScope, options) {{}},
    get: async function (module) {{
      if (module !== "./Cart") throw new Error("nav has no " + module);
      return function () {{
        return {{ version: VERSION, render: function (el) {{ el.textContent = "nav " + VERSION; }} }};
      }};
    }},
  }};
}})();
"""
    manifest = {
        "name": "nav",
        "metaData": {
            "name": "nav",
            "remoteEntry": {"name": "remoteEntry.js", "path": "", "type": "var"},
            "globalName": "nav_remote",
            "publicPath": "auto",
        },
        "shared": [],
        "remotes": [],
        "exposes": [{"name": "Cart", "path": "./Cart"}],
    }
    return DemoUnit(
        "header", "nav", version, {"mf-manifest.json": json.dumps(manifest), "remoteEntry.js": entry}
    )


async def test_classic_script_and_module_remotes_are_loaded_with_their_sri(
    api: httpx.AsyncClient,
    edge: httpx.AsyncClient,
    s3: Any,
    settings: Settings,
    browser: Browser,
    esbuild: Path,
    shell_packages: Path,
    tmp_path: Path,
) -> None:
    apartment = unique("mfsri")
    demo = demo_for(api, s3, settings, tmp_path, apartment)
    await demo.create_apartment()
    await demo.install_stable(classic_remote("1.0.0"))
    await demo.install_stable(mf_remote("1.0.0"))
    manifest = ApartmentManifest.model_validate_json(
        (await edge.get(manifest_url(settings, apartment))).content
    )
    buildings = manifest.apartment(apartment).buildings
    nav = buildings["header"].units["nav@1.0.0"]
    checkout = buildings["main"].units["checkout@1.0.0"]
    assert nav.federation is not None and (nav.federation.type, nav.federation.global_name) == (
        "var",
        "nav_remote",
    )

    host = await asyncio.to_thread(build_host, esbuild, shell_packages, tmp_path / "host")
    host_url, _ = await asyncio.to_thread(publish_vendor, s3, settings, "mf-host", host)
    beacons = f"http://{settings.api_host}:{settings.api_port}/beacons"
    # The host was built without knowing nav's type or global: the unit's federation says.
    remotes = [
        {"name": "nav", "entry": "https://remotes.example/nav/remoteEntry.js"},
        {"name": "checkout", "entry": BUILT_IN_ENTRY, "type": "module"},
    ]
    pages = {}
    for request in ("nav/Cart", "checkout/Cart"):
        html = host_page(host_url, apartment, manifest_url(settings, apartment), beacons, remotes, request)
        name = request.split("/")[0]
        pages[name] = await asyncio.to_thread(publish_shell, s3, settings, apartment, html, f"{name}.html")

    context = await browser.new_context()
    page = await context.new_page()
    for name, unit in (("nav", nav), ("checkout", checkout)):
        seen = await load(page, pages[name], "someone", settings)
        assert seen["error"] is None and seen["text"] == f"{name if name == 'nav' else 'cart'} 1.0.0", seen
        assert seen["report"]["remotes"][name]["state"] == "loaded" and unit.url in seen["fetched"]

    # Other bytes behind the same entry URL, a working container that would render 6.6.6:
    # the browser refuses them (SRI), a load_error.
    forged = {
        "nav": classic_remote("6.6.6").files["remoteEntry.js"],
        "checkout": "export async function init() {}\nexport async function get() {\n"
        '  return () => ({ version: "6.6.6", render(el) { el.textContent = "cart 6.6.6"; } });\n}\n',
    }
    for name, unit in (("nav", nav), ("checkout", checkout)):
        tamper(s3, settings, unit.url, forged[name].encode(), "text/javascript; charset=utf-8")
        fresh = await browser.new_context()  # no cached copy of the good bytes
        tab = await fresh.new_page()
        seen = await load(tab, pages[name], "someone", settings)
        assert seen["error"] is not None and seen["version"] is None and "6.6.6" not in seen["text"], seen
        remote = seen["report"]["remotes"][name]
        assert [(a["unit"], a["outcome"]) for a in remote["attempts"]] == [(unit.id, "load_error")], remote
        assert seen["report"]["beacon_status"] == [202]
        await fresh.close()
    loads = await unit_loads(api, apartment)
    assert loads.get(("header", "nav", "1.0.0", "load_error")) == 1
    assert loads.get(("main", "checkout", "1.0.0", "load_error")) == 1
    await context.close()
