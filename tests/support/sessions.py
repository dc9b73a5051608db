"""Synthetic page loads through the real API: honest sessions from many client networks.

Each network is a loopback address of its own /24 (127.<n>.<m>.1: any 127/8 address is
loopback on Linux, so a client socket can be bound to it), so the API sees the TCP peers a
site's visitors would give it. A session is what the loader does once per page: a beacon
token, then the beacons of the units it loaded.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import httpx

from tests.support.beacons import text_body


def network_address(index: int, first: int = 100) -> str:
    """The address of synthetic network `index`: 127.<first + index // 256>.<index % 256>.1."""
    return f"127.{first + index // 256}.{index % 256}.1"


@dataclass
class Variant:
    unit: str
    version: str
    error_ratio: float = 0.0


@dataclass
class Sessions:
    """Counts of what was sent (for the assertions)."""

    sent: int = 0
    failed: int = 0
    by_version: dict[str, int] = field(default_factory=dict)


async def one_session(
    client: httpx.AsyncClient,
    apartment: str,
    building: str,
    canary: Variant,
    baseline: Variant,
    bucket: str | None,
    rng: random.Random,
    counts: Sessions,
) -> bool:
    """One page load of a browser holding the bucket key `bucket`: its token says which unit the
    API assigned it (the canary, or the baseline), and it reports on that one."""
    params = {"apartment": apartment, **({"bucket": bucket} if bucket else {})}
    token = await client.get("/beacon-token", params=params)
    if token.status_code != 200:
        return False
    covered = token.json()["units"].get(building, [])
    variant = canary if f"{canary.unit}@{canary.version}" in covered else baseline
    failed = rng.random() < variant.error_ratio
    counts.sent += 1
    counts.failed += failed
    counts.by_version[variant.version] = counts.by_version.get(variant.version, 0) + 1
    beacon: dict[str, object] = {
        "apartment": apartment,
        "building": building,
        "unit": variant.unit,
        "version": variant.version,
        "outcome": "load_error" if failed else "loaded",
    }
    if not failed:
        beacon["load_seconds"] = rng.uniform(0.15, 0.25)
    answer = await client.post("/beacons", **text_body({"beacons": [beacon]}, token.json()["token"]))
    return answer.status_code == 202


@asynccontextmanager
async def honest_traffic(
    base_url: str,
    apartment: str,
    building: str,
    canary: Variant,
    baseline: Variant,
    weight: float,
    per_second: float,
    networks: int = 200,
    seed: int = 22,
    browsers_per_network: int = 2,
) -> AsyncIterator[Sessions]:
    """Sessions at a steady rate from `networks` networks in turn, each network's browsers in
    turn. Every browser got its bucket key from the API first (a first visit) and reports on
    the unit the API's split assigns it: about `weight` % of them on the canary once the
    rollout is at `weight`."""
    rng = random.Random(seed)
    counts = Sessions()
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=base_url,
                    transport=httpx.AsyncHTTPTransport(local_address=network_address(i)),
                    timeout=30,
                )
            )
            for i in range(networks)
        ]

        async def first_visit(client: httpx.AsyncClient) -> str | None:
            answer = await client.get("/beacon-token", params={"apartment": apartment})
            return str(answer.json()["bucket"]) if answer.status_code == 200 else None

        browsers: list[tuple[httpx.AsyncClient, str | None]] = []
        for _ in range(browsers_per_network):
            keys = await asyncio.gather(*(first_visit(c) for c in clients))
            browsers.extend(zip(clients, keys, strict=True))

        async def run() -> None:
            i = 0
            pending: set[asyncio.Task[bool]] = set()
            while True:
                client, key = browsers[i % len(browsers)]
                task = asyncio.create_task(
                    one_session(client, apartment, building, canary, baseline, key, rng, counts)
                )
                pending.add(task)
                task.add_done_callback(pending.discard)
                i += 1
                await asyncio.sleep(1 / per_second)

        runner = asyncio.create_task(run())
        try:
            yield counts
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
