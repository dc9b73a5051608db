"""What every benchmark gets: the rig, its clients and a scratch directory."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from temporalio.client import Client

from bench.loads import SyntheticRum
from bench.rig import Rig
from skyline.analysis import canary_queries
from skyline.settings import Settings


@dataclass
class Ctx:
    rig: Rig
    rum: SyntheticRum
    api: httpx.AsyncClient
    edge: httpx.AsyncClient
    temporal: Client
    settings: Settings  # as the worker and API see the rig
    work: Path
    full: bool
    counts: tuple[int, ...] | None = None  # the concurrency benchmark's levels (--counts)


async def wait_visible(
    prometheus_url: str,
    flows: list[tuple[str, str, str, str]],
    min_requests: float = 5,
    window_seconds: float = 10,
    within: float = 60,
) -> None:
    """Until Prometheus has scraped enough of every flow for the canary analysis to judge it."""
    pending = list(flows)
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=prometheus_url, timeout=10) as prom:
        while pending:
            apartment, building, unit, version = pending[-1]
            query = canary_queries(apartment, building, unit, version, window_seconds)[0][1]
            result = (await prom.get("/api/v1/query", params={"query": query})).json()["data"]["result"]
            if result and float(result[0]["value"][1]) >= min_requests:
                pending.pop()
                continue
            if time.monotonic() > deadline:
                raise TimeoutError(f"Prometheus never saw enough loads for {pending[-1]} ({query})")
            await asyncio.sleep(0.25)
