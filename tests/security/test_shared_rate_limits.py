"""Issue 25: a client's rate limit holds across processes. Two API processes on two ports
share the stack's Redis; one client sends its requests to both in turn.

Before: each process kept its own token bucket (api/beacons.py RateLimiter), so a client
spreading its requests over two processes got twice its burst.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from adapters.evidence import RedisEvidence
from skyline.rate_limit import RateCheck, RateLimiter
from stack.embedded import EmbeddedStack
from stack.processes import ManagedProcess, free_port, wait_until
from tests.api.test_beacons import beacon
from tests.support.beacons import text_body
from tests.support.scenario import create_apartment, unique

BURST = 6
RATE = 0.01  # per second: nothing refills within a test


@pytest.fixture(scope="module")
def two_apis(stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    processes: list[ManagedProcess] = []
    urls: list[str] = []
    try:
        for k in range(2):
            port = free_port()
            process = ManagedProcess(
                f"api-{k}",
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "api.main:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--no-proxy-headers",
                ],  # fmt: skip
                tmp_path_factory.mktemp(f"api-{k}") / "api.log",
                env={
                    **os.environ,
                    **stack.env(),
                    "SKYLINE_API_PORT": str(port),
                    "SKYLINE_BEACON_RATE_PER_SECOND": str(RATE),
                    "SKYLINE_BEACON_BURST": str(BURST),
                },
                cwd=Path(__file__).resolve().parents[2],
            )
            process.start()
            processes.append(process)
            url = f"http://127.0.0.1:{port}"
            wait_until(lambda u=url: httpx.get(u + "/healthz").status_code == 200, 60, f"api {k}", process)  # type: ignore[misc]
            urls.append(url)
        yield urls
    finally:
        for process in processes:
            process.stop()


def client(url: str, address: str) -> httpx.Client:
    return httpx.Client(base_url=url, transport=httpx.HTTPTransport(local_address=address), timeout=30)


def test_a_clients_token_rate_holds_across_two_api_processes(
    two_apis: list[str], stack: EmbeddedStack
) -> None:
    apartment = asyncio.run(_apartment(stack))
    clients = [client(url, "127.0.41.1") for url in two_apis]
    answers = []
    for i in range(2 * BURST):
        response = clients[i % 2].get("/beacon-token", params={"apartment": apartment})
        answers.append((i % 2, response.status_code, response.json().get("error", {}).get("code")))
    for c in clients:
        c.close()
    granted = [a for a in answers if a[1] == 200]
    limited = [a for a in answers if a[1] == 429]
    assert len(granted) == BURST, answers
    assert {a[2] for a in limited} == {"rate_limited"} and {a[0] for a in limited} == {0, 1}, answers


def test_a_clients_beacon_rate_holds_across_two_api_processes(
    two_apis: list[str], stack: EmbeddedStack
) -> None:
    apartment = asyncio.run(_apartment(stack))
    with client(two_apis[0], "127.0.42.1") as issuer:  # its own address: its own token bucket
        tokens = [
            issuer.get("/beacon-token", params={"apartment": apartment}).json()["token"] for _ in range(2)
        ]
    clients = [client(url, "127.0.43.1") for url in two_apis]
    statuses: list[tuple[int, int]] = []
    for i in range(2 * BURST):
        response = clients[i % 2].post(
            "/beacons", **text_body({"beacons": [beacon(apartment)]}, tokens[i % 2])
        )
        statuses.append((i % 2, response.status_code))
        if response.status_code == 429:
            assert response.json()["error"]["code"] == "rate_limited", response.text
            assert int(response.headers["retry-after"]) >= 1
    for c in clients:
        c.close()
    assert [s for _, s in statuses] == [202] * BURST + [429] * BURST, statuses
    # A refused request (here: not JSON) counts against the rate and hears the rate first.
    with client(two_apis[1], "127.0.43.1") as again:
        response = again.post("/beacons", content=b"{", headers={"content-type": "text/plain"})
    assert response.status_code == 429, response.text


@pytest.mark.asyncio(loop_scope="session")
async def test_the_shared_bucket_answers_as_the_in_memory_one(stack: EmbeddedStack) -> None:
    """GCRA in Redis and the in-memory token bucket: the same burst, the same wait."""
    ledger = RedisEvidence(stack.redis_url)
    check = RateCheck(unique("bucket"), "127.0.44.1", rate=2, burst=3)
    memory = RateLimiter(rate=2, burst=3)
    shared = [await ledger.take(check) for _ in range(4)]
    local = [memory.take(check.client) for _ in range(4)]
    await ledger.client.aclose()
    assert shared[:3] == local[:3] == [0, 0, 0]
    assert shared[3] == pytest.approx(local[3], abs=0.05) and local[3] == pytest.approx(0.5, abs=0.01)


async def _apartment(stack: EmbeddedStack) -> str:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as c:
        return await create_apartment(c)
