"""Issue 22: the client address is the TCP peer unless SKYLINE_TRUSTED_PROXIES names the proxy,
against the session stack's real API (uvicorn), which trusts no proxy.

Before: uvicorn believed X-Forwarded-For from loopback, so one client rotating the header
got 150 of 150 beacon tokens answered instead of the burst (40) plus the rate (20/s).
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from skyline.settings import Settings
from tests.support.scenario import create_apartment

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_rotating_x_forwarded_for_does_not_lift_the_token_rate_limit(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    apartment = await create_apartment(api)
    # From 127.0.0.1: the address uvicorn trusted forwarded headers from by default.
    async with httpx.AsyncClient(base_url=str(api.base_url), timeout=30) as client:
        started = time.monotonic()
        answers = await asyncio.gather(
            *(
                client.get(
                    "/beacon-token",
                    params={"apartment": apartment},
                    headers={"X-Forwarded-For": f"198.51.{i // 250}.{i % 250 + 1}"},
                )
                for i in range(150)
            )
        )
        elapsed = time.monotonic() - started
    issued = sum(1 for a in answers if a.status_code == 200)
    limited = [a for a in answers if a.status_code == 429]
    allowed = settings.beacon_burst + settings.beacon_rate_per_second * elapsed
    assert issued + len(limited) == 150, {a.status_code for a in answers}
    assert issued <= allowed + 1, f"{issued} tokens in {elapsed:.2f} s; the limit allows {allowed:.0f}"
    assert "127.0.0.1" in limited[0].json()["error"]["message"]
