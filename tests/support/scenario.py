"""Small helpers the end-to-end tests share: bundles, apartments, waiting on states."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ENTRY_JS = "export function mount(el) {{ el.textContent = 'header {version}'; }}\n"


def make_bundle(root: Path, version: str, files: int = 4) -> Path:
    """A small but realistic bundle: entry module, chunks, a stylesheet and source maps."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.js").write_text(ENTRY_JS.format(version=version))
    (root / "index.js.map").write_text('{"version":3,"sources":["index.ts"],"mappings":""}')
    (root / "style.css").write_text(f"/* {version} */ header {{ color: #123; }}\n")
    chunks = root / "chunks"
    chunks.mkdir(exist_ok=True)
    for i in range(files):
        (chunks / f"chunk-{i}.js").write_text(f"export const n{i} = {i}; // {version}\n")
    return root


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def stable_unit(name: str, version: str) -> dict[str, Any]:
    return {
        "id": f"{name}@{version}",
        "name": name,
        "version": version,
        "framework": "react",
        "url": f"https://cdn.example/{name}/{version}/index.js",
        "checksum": "sha384-stable",
        "size": 100,
        "status": "stable",
    }


async def create_apartment(
    api: httpx.AsyncClient, active_header: str | None = "1.0.0", headers: dict[str, str] | None = None
) -> str:
    """An apartment with header/main/footer; header already runs `active_header`."""
    apartment_id = unique("shop")
    header: dict[str, Any] = {"name": "Header", "category": "header", "units": {}}
    if active_header:
        unit = stable_unit("header", active_header)
        header.update(active_unit=unit["id"], units={unit["id"]: unit})
    body = {
        "id": apartment_id,
        "apartment": {
            "name": "Shop",
            "buildings": {
                "header": header,
                "main": {"name": "Main", "category": "main"},
                "footer": {"name": "Footer", "category": "footer"},
            },
        },
        "actor": "tests",
    }
    response = await api.post("/apartments", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return apartment_id


def strategy(**overrides: Any) -> dict[str, Any]:
    fast: dict[str, Any] = {
        "steps": [5, 25, 50, 100],
        "bake_seconds": 2,
        "analysis_interval_seconds": 1,
        "analysis_window_seconds": 10,
        "min_requests": 5,
        "inconclusive_limit": 3,
        # The synthetic traffic of these tests is the canary's alone: judged on
        # guards, with no human needed to confirm (the judge's own tests feed a baseline).
        "first_unit_needs_confirmation": False,
        # The browsers of these tests all reach the API from 127.0.0.1: one client network,
        # which the judge would not trust to decide alone (skyline/plausibility.py).
        "single_network_evidence": True,
    }
    fast.update(overrides)
    return fast


def parked_strategy(**overrides: Any) -> dict[str, Any]:
    """A rollout that stays at its first step while a test works with it.

    No traffic is fed, so an analysis would come back inconclusive and pause
    the rollout on its own after a few seconds; the first analysis is two
    minutes away instead.
    """
    return strategy(**{"bake_seconds": 300, "analysis_interval_seconds": 120, **overrides})


async def wait_state(
    api: httpx.AsyncClient, rollout_id: str, states: set[str], timeout: float = 60
) -> dict[str, Any]:
    """Poll the status until the rollout reaches one of `states`."""
    return await wait_for(api, rollout_id, lambda s: s["state"] in states, timeout)


async def wait_for(
    api: httpx.AsyncClient, rollout_id: str, predicate: Any, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await api.get(f"/rollouts/{rollout_id}")
        if response.status_code == 200:
            last = response.json()
            if predicate(last):
                return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"rollout {rollout_id}: condition never held; last status: {last}")


async def observe(api: httpx.AsyncClient, rollout_id: str, seconds: float) -> list[dict[str, Any]]:
    """Statuses seen over a period; for asserting that nothing changes while time passes."""
    deadline = time.monotonic() + seconds
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        seen.append((await api.get(f"/rollouts/{rollout_id}")).json())
        await asyncio.sleep(0.5)
    return seen
