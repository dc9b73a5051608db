"""Setting up rollouts on the fault rig: apartments, healthy canary traffic, starts."""

from __future__ import annotations

import uuid
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from bench.context import wait_visible
from bench.loads import SyntheticRum
from bench.rig import Rig
from bench.scenario import CATEGORIES, apartment_body, bounded_gather, rollout_body, start_rollout

VERSION = "1.1.0"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def healthy_apartment(
    rig: Rig,
    api: httpx.AsyncClient,
    loads: SyntheticRum,
    buildings: list[str] | tuple[str, ...] = CATEGORIES,
    prefix: str = "fault",
    active: str | None = None,
) -> str:
    """An apartment whose canaries (unit = building id, VERSION) get healthy, visible traffic.

    `active`: the version every building already runs, if any.
    """
    apartment = unique(prefix)
    body = apartment_body(apartment, buildings)
    if active is not None:
        for building_id, building in body["apartment"]["buildings"].items():
            key = f"{building_id}@{active}"
            building["active_unit"] = key
            building["units"] = {
                key: {
                    "id": key, "name": building_id, "version": active, "framework": "react",
                    "url": f"https://cdn.example/{building_id}/{active}/index.js",
                    "checksum": "sha384-stable", "size": 100, "status": "stable",
                }
            }  # fmt: skip
    response = await api.post("/apartments", json=body)
    assert response.status_code == 201, response.text
    flows = [(apartment, b, b, VERSION) for b in buildings]
    for flow in flows:
        loads.add(*flow, per_second=20)
    await wait_visible(rig.prometheus_url, flows, min_requests=5, window_seconds=10)
    return apartment


async def start_all(
    api: httpx.AsyncClient,
    bundle: Path,
    apartment: str,
    buildings: list[str] | tuple[str, ...],
    **strategy: Any,
) -> list[str]:
    # These tests are about surviving faults, not judgement: no comparison checks and no
    # minimum of loads, so a step moves on at the end of its bake; Prometheus is still read
    # every look. (With a minimum, a scrape that lags a 1 s bake on a loaded machine holds
    # the step for a human, as the judge should, and the rollout never ends on its own.)
    mechanics = {"checks": [], "min_requests": 0, **strategy}
    bodies = [rollout_body(apartment, b, bundle, VERSION, **mechanics) for b in buildings]
    return await bounded_gather(20, [partial(start_rollout, api, body) for body in bodies])
