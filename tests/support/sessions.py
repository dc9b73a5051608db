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
    variant: Variant,
    outcome: str,
) -> bool:
    token = await client.get("/beacon-token", params={"apartment": apartment})
    if token.status_code != 200:
        return False
    beacon: dict[str, object] = {
        "apartment": apartment,
        "building": building,
        "unit": variant.unit,
        "version": variant.version,
        "outcome": outcome,
    }
    if outcome == "loaded":
        beacon["load_seconds"] = random.uniform(0.15, 0.25)
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
) -> AsyncIterator[Sessions]:
    """Sessions at a steady rate from `networks` networks in turn, split `weight` % to the canary."""
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

        async def run() -> None:
            i = 0
            pending: set[asyncio.Task[bool]] = set()
            while True:
                variant = canary if rng.random() * 100 < weight else baseline
                failed = rng.random() < variant.error_ratio
                task = asyncio.create_task(
                    one_session(
                        clients[i % networks],
                        apartment,
                        building,
                        variant,
                        "load_error" if failed else "loaded",
                    )
                )
                pending.add(task)
                task.add_done_callback(pending.discard)
                counts.sent += 1
                counts.failed += failed
                counts.by_version[variant.version] = counts.by_version.get(variant.version, 0) + 1
                i += 1
                await asyncio.sleep(1 / per_second)

        runner = asyncio.create_task(run())
        try:
            yield counts
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
