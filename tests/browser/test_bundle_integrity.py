"""A real esbuild bundle, rolled out and loaded in Chromium with every file verified.

The micro-frontend is built by esbuild from npm (`--bundle --format=esm
--splitting --sourcemap`): an entry, a lazily imported chunk, a vendor chunk
both share, the entry's stylesheet (and the lazy chunk's own, which esbuild
also folds into the entry's), source maps. It is published by real rollouts;
the loader links its stylesheet with SRI and gives the browser the SRI of
every module in an import map, so a tampered chunk or stylesheet fails the
load, is reported as load_error and counts against the canary.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext

from adapters.cdn import VarnishPurger
from adapters.storage import IMMUTABLE
from api.routes.loader import LoaderAsset
from demo.shell import manifest_url, publish_shell, shell_html
from skyline.settings import Settings
from tests.browser.bundler import build
from tests.browser.support import DONE, bucket_key, sri, unit_loads
from tests.support.scenario import strategy, unique, wait_for, wait_state

pytestmark = pytest.mark.asyncio(loop_scope="session")

VENDOR = """export function h(tag, text, cls) {
  const e = document.createElement(tag);
  e.textContent = text;
  if (cls) e.className = cls;
  return e;
}
"""
INDEX = """import { h } from "./vendor.js";
import "./style.css";
export async function mount(el, ctx) {
  el.replaceChildren(h("h1", `catalog ${ctx.version}`, "mfe-title"));
  const { details } = await import("./lazy.js");
  el.append(details());
}
"""
LAZY = """import { h } from "./vendor.js";
import "./lazy.css";
export function details() { return h("p", "%s", "mfe-details"); }
"""
LAZY_CSS = ".mfe-details { color: rgb(0, 128, 0); }\n"
STYLE = ".mfe-title { color: %s; }\n"

RED, BLUE = "rgb(255, 0, 0)", "rgb(0, 0, 255)"


def sources(root: Path, details: str, title_color: str) -> Path:
    """The micro-frontend's sources; every version is written to the same directory, as in
    a real repository (esbuild writes source paths into chunks and maps)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "vendor.js").write_text(VENDOR)
    (root / "index.js").write_text(INDEX)
    (root / "lazy.js").write_text(LAZY % details)
    (root / "lazy.css").write_text(LAZY_CSS)
    (root / "style.css").write_text(STYLE % title_color)
    return root


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


async def start_rollout(
    api: httpx.AsyncClient, apartment: str, bundle: Path, version: str, strat: Any
) -> str:
    body = {
        "apartment": apartment,
        "building": "main",
        "unit_id": "catalog",
        "version": version,
        "framework": "vanilla",
        "entry": "index.js",
        "bundle": {"path": str(bundle)},
        "strategy": strat,
        "actor": "tests",
        "reason": f"catalog {version}",
    }
    response = await api.post("/rollouts", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def load(
    browser: Browser,
    shell_url: str,
    user: str,
    context: BrowserContext | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """One page load, in a fresh context (empty cache) unless one is given; what the loader
    did and what was fetched."""
    own = context is None
    if context is None:
        context = await browser.new_context()
    page = await context.new_page()
    fetched: dict[str, bytes] = {}
    console: list[str] = []

    async def record(response: Any) -> None:
        if "/bundles/" in response.url and response.ok:
            fetched[response.url] = await response.body()

    page.on("response", lambda r: asyncio.ensure_future(record(r)))
    page.on("console", lambda m: console.append(m.text))
    bucket = f"&skyline_bucket={bucket_key(settings, user)}" if settings is not None else ""
    await page.goto(f"{shell_url}?skyline_user={user}{bucket}")
    await page.wait_for_function(DONE, timeout=30_000)
    report: dict[str, Any] = await page.evaluate("window.skyline.report")
    assert report.get("error") is None, report
    main = report["buildings"]["main"]
    out: dict[str, Any] = {"report": report, "main": main, "fetched": fetched, "console": console}
    if main["state"] == "loaded":
        out["title"] = await page.eval_on_selector(
            ".mfe-title", "e => [e.textContent, getComputedStyle(e).color]"
        )
        out["details"] = await page.eval_on_selector(
            ".mfe-details", "e => [e.textContent, getComputedStyle(e).color]"
        )
    maps = await page.eval_on_selector_all(
        'script[type="importmap"][data-skyline]', "els => els.map(e => e.textContent)"
    )
    out["import_map"] = json.loads(maps[0]) if maps else None
    out["links"] = await page.eval_on_selector_all(
        'link[rel="stylesheet"]', "els => els.map(e => [e.href, e.integrity, e.crossOrigin])"
    )
    await asyncio.sleep(0.2)  # response bodies still being read
    await (context.close() if own else page.close())
    return out


def stored(s3: Any, settings: Settings, url: str) -> bytes:
    key = url.removeprefix(settings.public_url(""))
    body: bytes = s3.get_object(Bucket=settings.s3_bucket, Key=key)["Body"].read()
    return body


def tamper(s3: Any, settings: Settings, url: str, body: bytes, content_type: str) -> None:
    """Overwrite the object behind an edge URL and purge it from the edge."""
    key = url.removeprefix(settings.public_url(""))
    s3.put_object(
        Bucket=settings.s3_bucket, Key=key, Body=body, ContentType=content_type, CacheControl=IMMUTABLE
    )
    with httpx.Client(timeout=10) as http:
        VarnishPurger(settings.edge_url, http).purge([f"/{settings.s3_bucket}/{key}"])


async def test_esbuild_bundle_every_file_verified_tampering_fails_the_canary_second_version_dedups(
    api: httpx.AsyncClient, s3: Any, settings: Settings, browser: Browser, esbuild: Path, tmp_path: Path
) -> None:
    v1 = build(esbuild, sources(tmp_path / "src", "details 1.0.0", RED), "index.js", tmp_path / "dist1")
    v2 = build(esbuild, sources(tmp_path / "src", "details 1.1.0", BLUE), "index.js", tmp_path / "dist2")
    built1, built2 = tree(v1), tree(v2)
    # what esbuild made: entry, lazy chunk, shared vendor chunk, stylesheets, maps
    names = sorted(built1)
    assert [n for n in names if n.endswith(".js")][0].startswith("chunk-"), names
    assert any(n.startswith("lazy-") and n.endswith(".js") for n in names), names
    assert {"index.js", "index.css", "index.js.map"} <= set(names), names

    apartment = unique("esb")
    created = await api.post(
        "/apartments",
        json={
            "id": apartment,
            "actor": "tests",
            "apartment": {"name": "esbuild", "buildings": {"main": {"name": "Main", "category": "main"}}},
        },
    )
    assert created.status_code == 201, created.text

    # 1.0.0 becomes the stable unit.
    first = await start_rollout(
        api, apartment, v1, "1.0.0", {"kind": "canary", "steps": [100], "bake_seconds": 3600}
    )
    await wait_for(api, first, lambda s: s["state"] == "progressing" and bool(s["revisions"]), 120)
    promoted = await api.post(f"/rollouts/{first}/promote", params={"full": "true"}, json={"actor": "tests"})
    assert promoted.status_code == 200, promoted.text
    assert (await wait_state(api, first, {"succeeded", "failed", "rolled_back"}, 120))["state"] == "succeeded"

    manifest = (await api.get(f"/apartments/{apartment}/manifest")).json()
    unit1 = manifest["apartments"][apartment]["buildings"]["main"]["units"]["catalog@1.0.0"]
    files1 = unit1["files"]
    assert {r for r in built1 if r.endswith((".js", ".css"))} == set(files1)
    assert files1["index.js"]["url"] == unit1["url"] and files1["index.js"]["integrity"] == unit1["checksum"]
    assert files1["index.css"]["kind"] == "style"
    assert {f["kind"] for r, f in files1.items() if r.endswith(".js")} == {"module"}

    loader = LoaderAsset.model_validate((await api.get("/loader")).json())
    page_html = shell_html(
        title="esbuild",
        apartment=apartment,
        manifest=manifest_url(settings, apartment),
        beacons=f"http://{settings.api_host}:{settings.api_port}/beacons",
        loader=loader,
        buildings=("main",),
    )
    shell_url = publish_shell(s3, settings, apartment, page_html)

    seen = await load(browser, shell_url, "user-1", settings=settings)
    assert seen["report"]["integrity"] == "importmap", seen["report"]
    assert seen["main"]["state"] == "loaded" and seen["main"]["unit"] == "catalog@1.0.0", seen["main"]
    # styles applied: the entry's stylesheet colours the title and the lazy chunk's paragraph
    assert seen["title"] == ["catalog 1.0.0", RED]
    assert seen["details"] == ["details 1.0.0", "rgb(0, 128, 0)"]
    # every file the browser fetched was verified: modules by the import map, stylesheets by SRI
    integrity = seen["import_map"]["integrity"]
    modules = {u for u in seen["fetched"] if u.endswith(".js")}
    assert modules == {files1[r]["url"] for r in files1 if r.endswith(".js")}, modules
    for url in modules:
        assert integrity[url] == sri(seen["fetched"][url]), url
    styles = [link for link in seen["links"] if "/bundles/" in link[0]]
    assert styles == [[files1["index.css"]["url"], files1["index.css"]["integrity"], "anonymous"]]
    assert sri(seen["fetched"][files1["index.css"]["url"]]) == files1["index.css"]["integrity"]

    # The integrity probe ran once in this browser: the next page does not repeat it, and
    # logs no integrity error.
    context = await browser.new_context()
    await load(browser, shell_url, "user-1", context, settings=settings)
    again = await load(browser, shell_url, "user-1", context, settings=settings)
    await context.close()
    assert again["report"]["integrity"] == "importmap" and again["main"]["state"] == "loaded"
    assert not [line for line in again["console"] if "integrity" in line], again["console"]
    assert again["import_map"]["integrity"] == {
        u: i for u, i in integrity.items() if not u.startswith("data:")
    }

    # 1.1.0: new lazy chunk and title colour; the vendor chunk and the lazy CSS did not change.
    second = await start_rollout(
        api,
        apartment,
        v2,
        "1.1.0",
        strategy(
            steps=[100],
            bake_seconds=60,
            analysis_interval_seconds=2,
            analysis_window_seconds=120,
            min_requests=4,
            max_error_rate=0.05,
            inconclusive_limit=1000,
        ),
    )
    status = await wait_for(api, second, lambda s: s["state"] == "progressing" and bool(s["revisions"]), 120)
    # Paused while the pages below load (traffic stays on the canary), so the judge
    # rules on all of them at once after the resume.
    paused = await api.post(f"/rollouts/{second}/pause", json={"actor": "tests", "reason": "loading pages"})
    assert paused.status_code == 200, paused.text
    changed = {r for r, data in built2.items() if built1.get(r) != data}
    unchanged = set(built2) - changed
    assert any(r.startswith("chunk-") and r.endswith(".js") for r in unchanged), unchanged
    published = next(h["reason"] for h in status["history"] if h["action"] == "published")
    assert published.startswith(
        f"{len(built2)} files ({len(changed)} uploaded, {len(unchanged)} already there)"
    ), published

    manifest = (await api.get(f"/apartments/{apartment}/manifest")).json()
    unit2 = manifest["apartments"][apartment]["buildings"]["main"]["units"]["catalog@1.1.0"]
    files2 = unit2["files"]
    vendor = next(r for r in files2 if r.startswith("chunk-") and r.endswith(".js"))
    assert files2[vendor]["url"] == files1[vendor]["url"]  # one URL: browsers keep it cached
    lazy = next(r for r in files2 if r.startswith("lazy-") and r.endswith(".js"))
    assert lazy not in files1

    good = await load(browser, shell_url, "user-2", settings=settings)
    assert good["main"]["state"] == "loaded" and good["main"]["unit"] == "catalog@1.1.0", good["main"]
    assert good["title"] == ["catalog 1.1.0", BLUE] and good["details"][0] == "details 1.1.0"

    # A tampered stylesheet: the canary fails, the stable unit loads with its own styles only.
    css_url = files2["index.css"]["url"]
    css = stored(s3, settings, css_url)  # as published: its sourceMappingURL names the renamed map
    tamper(s3, settings, css_url, css.replace(b"0, 0, 255", b"0, 0, 254"), "text/css; charset=utf-8")
    bad_css = await load(browser, shell_url, "user-3", settings=settings)
    attempts = bad_css["main"]["attempts"]
    assert [(a["unit"], a["outcome"]) for a in attempts] == [
        ("catalog@1.1.0", "load_error"),
        ("catalog@1.0.0", "loaded"),
    ], attempts
    assert "stylesheet" in attempts[0]["error"] and css_url in attempts[0]["error"]
    assert bad_css["title"] == ["catalog 1.0.0", RED]
    assert [link[0] for link in bad_css["links"] if "/bundles/" in link[0]] == [files1["index.css"]["url"]]
    tamper(s3, settings, css_url, css, "text/css; charset=utf-8")  # restored

    # A tampered lazy chunk (imported while mounting): refused by the import map's integrity.
    lazy_url = files2[lazy]["url"]
    tamper(
        s3, settings, lazy_url, built2[lazy].replace(b"details 1.1.0", b"tampered!!!!!"), "text/javascript"
    )
    for user in ("user-4", "user-5", "user-6"):
        bad_chunk = await load(browser, shell_url, user, settings=settings)
        attempts = bad_chunk["main"]["attempts"]
        assert [(a["unit"], a["outcome"]) for a in attempts] == [
            ("catalog@1.1.0", "load_error"),
            ("catalog@1.0.0", "loaded"),
        ], attempts
        assert lazy_url in attempts[0]["error"], attempts[0]
        assert any("integrity" in line and lazy_url in line for line in bad_chunk["console"]), bad_chunk[
            "console"
        ]
        assert bad_chunk["details"][0] == "details 1.0.0"
        assert bad_chunk["report"]["beacon_status"] == 202

    loads = await unit_loads(api, apartment)
    assert loads[("main", "catalog", "1.1.0", "load_error")] == 4, loads
    assert loads[("main", "catalog", "1.1.0", "loaded")] == 1, loads
    assert loads[("main", "catalog", "1.0.0", "loaded")] == 7, loads

    # ... and they count against the canary: the judge rolls it back.
    resumed = await api.post(f"/rollouts/{second}/resume", json={"actor": "tests", "reason": "judge them"})
    assert resumed.status_code == 200, resumed.text
    final = await wait_state(api, second, {"succeeded", "rolled_back", "failed", "paused"}, 120)
    assert final["state"] == "rolled_back", (final["state"], final.get("reason"), final.get("paused_reason"))
    assert "error_rate" in final["reason"], final["reason"]
