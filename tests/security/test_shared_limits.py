"""Issue 22: limits that hold across processes. Four API processes behind one port (uvicorn
--workers 4: the kernel hands each connection to one of them) share the session cap and the
client-network token budget through the stack's Redis.

Before: each process kept its own session ledger, so a session spreading its requests over
four processes could send up to 4 x the cap.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stack.embedded import EmbeddedStack
from stack.processes import ManagedProcess, free_port, wait_until
from tests.api.test_beacons import beacon
from tests.support.beacons import text_body
from tests.support.scenario import create_apartment

WORKERS = 4
BUDGET = 30  # beacon tokens per client network and minute, for these processes


@pytest.fixture(scope="module")
def four_apis(stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    process = ManagedProcess(
        "four-apis",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(WORKERS),
            "--no-proxy-headers",
        ],  # fmt: skip
        tmp_path_factory.mktemp("four-apis") / "api.log",
        env={
            **os.environ,
            **stack.env(),
            "SKYLINE_API_PORT": str(port),
            "SKYLINE_BEACON_NETWORK_TOKENS_PER_MINUTE": str(BUDGET),
        },
        cwd=Path(__file__).resolve().parents[2],
    )
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(url + "/healthz").status_code == 200, 60, "four apis", process)
        yield url
    finally:
        process.stop()


def fresh(url: str, address: str) -> httpx.Client:
    """A new connection per request: each may land on any of the four processes."""
    return httpx.Client(
        base_url=url,
        transport=httpx.HTTPTransport(local_address=address),
        headers={"connection": "close"},
        timeout=30,
    )


@pytest.mark.asyncio(loop_scope="session")
async def test_a_session_gets_at_most_its_cap_from_four_api_processes(
    four_apis: str, api: httpx.AsyncClient, stack: EmbeddedStack
) -> None:
    apartment = await create_apartment(api)
    cap = stack.settings.beacon_session_max_beacons
    # Four addresses, so the per-address rate limit (per process) is not what stops it.
    clients = [fresh(four_apis, f"127.0.23.{i}") for i in range(1, 5)]
    token = clients[0].get("/beacon-token", params={"apartment": apartment}).json()["token"]
    accepted = 0
    statuses: list[int] = []
    for i in range(4 * cap // 20):
        response = clients[i % 4].post("/beacons", **text_body({"beacons": [beacon(apartment)] * 20}, token))
        statuses.append(response.status_code)
        if response.status_code == 202:
            accepted += 20
        else:
            assert response.json()["error"]["code"] == "session_limit", response.text
    for client in clients:
        client.close()
    assert accepted == cap, statuses
    assert statuses[: cap // 20] == [202] * (cap // 20) and set(statuses[cap // 20 :]) == {429}


def test_the_token_budget_of_a_client_network_is_shared_by_four_api_processes(
    four_apis: str, stack: EmbeddedStack
) -> None:
    budget = BUDGET
    for _ in range(3):  # a run that straddles a minute sees two budgets: run again
        # A new apartment each time (the budget is per apartment and minute): a run again in
        # the minute the last one spilled into would start with that minute's budget spent.
        apartment = asyncio.run(_apartment(stack))
        minute = time.time() // 60
        issued = limited = 0
        # One client network (127.0.24.0/24), its addresses in turn, each request on any process.
        for i in range(budget + 40):
            with fresh(four_apis, f"127.0.24.{i % 50 + 1}") as client:
                answer = client.get("/beacon-token", params={"apartment": apartment})
            if answer.status_code == 200:
                issued += 1
            else:
                assert answer.json()["error"]["code"] == "network_budget", answer.text
                limited += 1
        if time.time() // 60 == minute:
            break
    assert (issued, limited) == (budget, 40)


async def _apartment(stack: EmbeddedStack) -> str:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as client:
        return await create_apartment(client)
