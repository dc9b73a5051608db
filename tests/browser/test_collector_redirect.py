"""An old shell in Chromium: its beacons go to the API, which answers 308 to the collector.

A second API process on the suite's stack, told the stack's collector
(SKYLINE_COLLECTOR_URL), stands for a deployment that moved browsers to the
collector. A page on another origin fetches exactly as the loader does
(`credentials: "omit"`, a `text/plain` POST: a CORS simple request) from that
API's `/beacon-token` and `/beacons`: Chromium must follow both 308s across
origins, and the collector must count the beacon.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser

from skyline.settings import Settings
from stack.embedded import EmbeddedStack
from stack.processes import ManagedProcess, free_port, wait_until
from tests.support.scenario import create_apartment

pytestmark = pytest.mark.asyncio(loop_scope="session")

OLD_SHELL_FETCHES = """
async ([api, apartment]) => {
  const token = await fetch(`${api}/beacon-token?apartment=${apartment}`,
    { cache: "no-store", credentials: "omit" });
  const session = await token.json();
  const posted = await fetch(`${api}/beacons`, {
    method: "POST",
    headers: { "content-type": "text/plain;charset=UTF-8" },
    body: JSON.stringify({ token: session.token, beacons: [{
      apartment, building: "header", unit: "header", version: "1.0.0",
      outcome: "loaded", load_seconds: 0.1 }] }),
    credentials: "omit",
  });
  return { token_url: token.url, status: posted.status, url: posted.url, body: await posted.json() };
}
"""


@pytest.fixture(scope="module")
def redirecting_api(stack: EmbeddedStack) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        **stack.env(),
        "SKYLINE_COLLECTOR_URL": stack.collector_url,
        "SKYLINE_API_PORT": str(port),
    }
    argv = [stack.python, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port)]
    process = ManagedProcess("api-redirecting", argv, stack.state_dir / "logs" / "api-redirecting.log", env)
    process.start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _ok(f"{url}/healthz"), 60, "api-redirecting", process)
        yield url
    finally:
        process.stop()


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def counted(collector: str, apartment: str) -> float:
    async with httpx.AsyncClient(base_url=collector, timeout=10) as client:
        text = (await client.get("/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("skyline_unit_loads_total{") and f'apartment="{apartment}"' in line
    )


async def test_an_old_shells_beacons_follow_the_308_to_the_collector(
    browser: Browser, api: httpx.AsyncClient, stack: EmbeddedStack, settings: Settings, redirecting_api: str
) -> None:
    apartment = await create_apartment(api)
    before = await counted(stack.collector_url, apartment)
    context = await browser.new_context()
    try:
        tab = await context.new_page()
        # The page's origin is the edge: neither the API nor the collector.
        await tab.goto(f"{settings.edge_url}/")
        result: dict[str, Any] = await tab.evaluate(OLD_SHELL_FETCHES, [redirecting_api, apartment])
    finally:
        await context.close()
    assert result["status"] == 202, result
    assert result["body"] == {"accepted": 1}
    assert result["url"] == f"{stack.collector_url}/beacons", "Chromium followed the 308"
    assert result["token_url"].startswith(f"{stack.collector_url}/beacon-token")
    # The collector counts before it answers 202: its own /metrics has the load now.
    assert await counted(stack.collector_url, apartment) == before + 1
