"""Apartments, bundles and rollouts through the public API, for benchmarks and fault tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from temporalio.client import Client

from skyline.manifest import ApartmentManifest
from skyline.rollout import TERMINAL_STATES, RolloutStatus
from workflows.rollout import RolloutWorkflow

T = TypeVar("T")
CATEGORIES = ("header", "main", "sidebar", "footer")


def make_bundle(root: Path, label: str) -> Path:
    """A small bundle: entry module, one chunk, a stylesheet and a source map."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.js").write_text(f"export function mount(el) {{ el.textContent = '{label}'; }}\n")
    (root / "index.js.map").write_text('{"version":3,"sources":["index.ts"],"mappings":"AAAA"}')
    (root / "chunk-0.js").write_text(f"export const label = '{label}';\n")
    (root / "style.css").write_text(f"/* {label} */ .unit {{ color: #123; }}\n")
    return root


def apartment_body(apartment: str, buildings: Iterable[str]) -> dict[str, Any]:
    return {
        "id": apartment,
        "apartment": {
            "name": apartment,
            "buildings": {
                b: {"name": b, "category": CATEGORIES[i % len(CATEGORIES)]} for i, b in enumerate(buildings)
            },
        },
        "actor": "bench",
    }


async def create_apartment(api: httpx.AsyncClient, apartment: str, buildings: Iterable[str]) -> None:
    response = await api.post("/apartments", json=apartment_body(apartment, buildings))
    if response.status_code != 201:
        raise RuntimeError(f"creating apartment {apartment}: {response.status_code} {response.text}")


def strategy(**overrides: Any) -> dict[str, Any]:
    fast: dict[str, Any] = {
        "steps": [5, 25, 50, 100],
        "bake_seconds": 1,
        "analysis_interval_seconds": 1,
        "analysis_window_seconds": 10,
        "min_requests": 5,
        "inconclusive_limit": 10,
        # Synthetic traffic is the canary's alone: no human confirms a unit without a
        # baseline in a measurement of mechanics (the judgement benchmark judges judgement).
        "first_unit_needs_confirmation": False,
    }
    fast.update(overrides)
    return fast


# Parks a rollout at its first weight: the first analysis is an hour away.
PARKED = {"bake_seconds": 3600, "analysis_interval_seconds": 3600}


def rollout_body(
    apartment: str, building: str, bundle: Path, version: str, **strategy_overrides: Any
) -> dict[str, Any]:
    return {
        "apartment": apartment,
        "building": building,
        "unit_id": building,
        "version": version,
        "bundle": {"path": str(bundle)},
        "strategy": strategy(**strategy_overrides),
        "actor": "bench",
        "reason": "measure",
    }


async def start_rollout(api: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await api.post("/rollouts", json=body)
    if response.status_code != 201:
        raise RuntimeError(f"POST /rollouts: {response.status_code} {response.text}")
    return str(response.json()["id"])


async def bounded_gather(limit: int, factories: Iterable[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run the coroutines `limit` at a time, results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(factory: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await factory()

    return await asyncio.gather(*(one(f) for f in factories))


async def status(temporal: Client, rollout_id: str) -> RolloutStatus:
    return await temporal.get_workflow_handle_for(RolloutWorkflow.run, rollout_id).query(
        RolloutWorkflow.status
    )


async def wait_status(
    temporal: Client,
    rollout_id: str,
    predicate: Callable[[RolloutStatus], bool],
    within: float,
    interval: float = 0.2,
) -> RolloutStatus:
    """Poll the workflow's status query until `predicate` holds; AssertionError on timeout."""
    deadline = time.monotonic() + within
    last: RolloutStatus | str = "never answered"
    while True:
        try:
            last = await status(temporal, rollout_id)
            if predicate(last):
                return last
        except Exception as exc:  # Temporal restarting, worker away: not yet
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            shown = last if isinstance(last, str) else _brief(last)
            raise AssertionError(f"{rollout_id}: condition not met after {within:g}s; last: {shown}")
        await asyncio.sleep(interval)


def parked(s: RolloutStatus) -> bool:
    """At the first weight and waiting (see PARKED)."""
    return s.state == "progressing" and len(s.revisions) == 1


def terminal(s: RolloutStatus) -> bool:
    return s.state in TERMINAL_STATES


def _brief(s: RolloutStatus) -> str:
    return (
        f"state={s.state} weight={s.weight} step={s.step} paused={s.paused_reason!r} "
        f"reason={s.reason!r} revisions={s.revisions}"
    )


async def edge_manifest(edge: httpx.AsyncClient, bucket: str, apartment: str) -> ApartmentManifest:
    response = await edge.get(f"/{bucket}/manifests/{apartment}/manifest.json")
    response.raise_for_status()
    return ApartmentManifest.from_json_bytes(response.content)
