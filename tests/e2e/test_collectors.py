"""Two collectors and two workers on one stack (issue 25): one truth across replicas.

A stack of its own (the suite's runs one of each): beacons spread over both
collectors are summed by the judge's own query; a session's cap holds across
both (the shared store); SIGKILL of one collector and one worker mid-rollout
loses neither the evidence the surviving collector accepted nor the rollout.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from activities.metrics import GatherFiguresInput, MetricsActivities
from adapters.search_attributes import REGISTRATION
from skyline.figures import Figures
from skyline.settings import Settings
from stack.embedded import EmbeddedStack, StackPorts
from tests.support.beacons import beacon_token, text_body
from tests.support.rum import RumTarget
from tests.support.scenario import create_apartment, make_bundle, strategy, wait_for, wait_state
from tests.support.webhooks import WEBHOOK_HOST

pytestmark = pytest.mark.asyncio(loop_scope="session")

CAP = 4  # beacons per session, small so alternating requests reach it


@pytest.fixture(scope="module")
def replicas(rum: RumTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    embedded = EmbeddedStack(
        tmp_path_factory.mktemp("replicas"),
        StackPorts.ephemeral(),
        prometheus_scrape_interval="1s",
        extra_scrape_targets=[rum.address],
        search_attributes=REGISTRATION,
        collectors=2,
        workers=2,
        settings=Settings(
            bundle_root=tmp_path_factory.getbasetemp(),
            webhook_allowed_hosts=[WEBHOOK_HOST],
        ),
    )
    try:
        # The stack hands its processes only its connection settings: the cap by environment.
        with pytest.MonkeyPatch.context() as env:
            env.setenv("SKYLINE_BEACON_SESSION_MAX_BEACONS", str(CAP))
            embedded.start()
        yield embedded
    finally:
        embedded.stop()


@pytest.fixture(scope="module")
def conf(replicas: EmbeddedStack) -> Settings:
    return Settings.model_validate({k.removeprefix("SKYLINE_").lower(): v for k, v in replicas.env().items()})


@pytest_asyncio.fixture(loop_scope="session")
async def control(replicas: EmbeddedStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=replicas.api_url, timeout=60) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session")
async def collectors(replicas: EmbeddedStack) -> AsyncIterator[list[httpx.AsyncClient]]:
    clients = [httpx.AsyncClient(base_url=url, timeout=30) for url in replicas.collector_urls]
    try:
        yield clients
    finally:
        for client in clients:
            await client.aclose()


def beacon(apartment: str, version: str = "1.0.0") -> dict[str, object]:
    return {
        "apartment": apartment,
        "building": "header",
        "unit": "header",
        "version": version,
        "outcome": "loaded",
        "load_seconds": 0.1,
    }


async def page_load(token_from: httpx.AsyncClient, post_to: httpx.AsyncClient, apartment: str) -> None:
    """One page load: a token (a new session) from one collector, its beacon to another."""
    token = await beacon_token(token_from, apartment)
    accepted = await post_to.post("/beacons", **text_body({"beacons": [beacon(apartment)]}, token))
    assert accepted.status_code == 202, accepted.text


async def judged(conf: Settings, apartment: str, started: float, want: int, timeout: float = 30) -> Figures:
    """The judge's own reading (MetricsActivities.since) of header@1.0.0, polled until it
    reaches `want` or the deadline passes."""
    reader = MetricsActivities(conf.prometheus_url, timeout_seconds=10)
    inp = GatherFiguresInput(
        apartment=apartment,
        building="header",
        unit="header",
        canary_version="1.0.0",
        baseline_version=None,
        since_seconds=started,
        at_seconds=time.time(),
        window_seconds=60,
    )
    deadline = time.monotonic() + timeout
    figures = Figures()
    while time.monotonic() < deadline:
        figures = await asyncio.to_thread(reader.since, inp, "1.0.0", started)
        if figures.loads >= want:
            break
        await asyncio.sleep(0.5)  # the next scrape; bounded by the deadline
    return figures


async def instances(conf: Settings, apartment: str) -> set[str]:
    query = (
        f'count by (instance) (skyline_unit_loads_total{{job="skyline-collector",apartment="{apartment}"}})'
    )
    async with httpx.AsyncClient(base_url=conf.prometheus_url, timeout=10) as prometheus:
        result = (await prometheus.get("/api/v1/query", params={"query": query})).json()["data"]["result"]
    return {str(series["metric"]["instance"]) for series in result}


async def test_the_judge_sees_the_sum_of_both_collectors(
    control: httpx.AsyncClient, collectors: list[httpx.AsyncClient], conf: Settings
) -> None:
    first, second = collectors
    apartment = await create_apartment(control)
    started = time.time() - 1
    for index in range(6):  # tokens and beacons cross replicas: one beacon key, one store
        a, b = (first, second) if index % 2 else (second, first)
        await page_load(a, b, apartment)
    figures = await judged(conf, apartment, started, 6)
    assert figures.loads == 6
    assert len(await instances(conf, apartment)) == 2, "each collector holds part of the count"


async def test_an_old_shell_reaches_a_collector_through_the_apis_308(
    control: httpx.AsyncClient, collectors: list[httpx.AsyncClient], conf: Settings
) -> None:
    apartment = await create_apartment(control)
    started = time.time() - 1
    async with httpx.AsyncClient(base_url=str(control.base_url), follow_redirects=True, timeout=30) as old:
        token = await beacon_token(old, apartment)
        posted = await old.post("/beacons", **text_body({"beacons": [beacon(apartment)]}, token))
    assert posted.status_code == 202, posted.text
    assert [r.status_code for r in posted.history] == [308]
    assert str(posted.url).startswith(str(collectors[0].base_url))
    assert (await judged(conf, apartment, started, 1)).loads == 1


async def test_a_sessions_cap_holds_across_both_collectors(
    control: httpx.AsyncClient, collectors: list[httpx.AsyncClient]
) -> None:
    apartment = await create_apartment(control)
    token = await beacon_token(collectors[0], apartment)
    statuses = []
    for index in range(2 * CAP):
        response = await collectors[index % 2].post(
            "/beacons", **text_body({"beacons": [beacon(apartment)]}, token)
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.json()["error"]["code"] == "session_limit"
    assert statuses == [202] * CAP + [429] * CAP


async def test_sigkill_of_a_collector_and_a_worker_mid_rollout_loses_nothing(
    replicas: EmbeddedStack,
    control: httpx.AsyncClient,
    collectors: list[httpx.AsyncClient],
    conf: Settings,
    rum: RumTarget,
    tmp_path: Path,
) -> None:
    apartment = await create_apartment(control)
    bundle = make_bundle(tmp_path / "b", "1.1.0")
    body = {
        "apartment": apartment,
        "building": "header",
        "unit_id": "header",
        "version": "1.1.0",
        "bundle": {"path": str(bundle)},
        "strategy": strategy(),
        "actor": "alice",
        "reason": "replicas die under it",
    }
    with rum.traffic(apartment, "header", "header", "1.1.0", error_ratio=0.0, load_seconds=0.2):
        rum.wait_visible(conf.prometheus_url, apartment, "header", "header", "1.1.0")
        created = await control.post("/rollouts", json=body)
        assert created.status_code == 201, created.text
        rollout_id = created.json()["id"]
        # Mid-rollout: past its first look, not finished.
        status = await wait_for(control, rollout_id, lambda s: bool(s["analyses"]), timeout=120)
        assert status["state"] not in {"succeeded", "rolled_back", "failed"}, status
        pids = replicas.pids()
        for name in ("collector-2", "worker-2"):
            os.kill(pids[name], signal.SIGKILL)
        # Evidence the surviving collector accepts after the kill (another apartment's: the
        # rollout's own canary is judged alone, without baseline loads beside it).
        other = await create_apartment(control)
        started = time.time() - 1
        for _ in range(3):
            await page_load(collectors[0], collectors[0], other)
        assert (await judged(conf, other, started, 3)).loads == 3
        final = await wait_state(
            control, rollout_id, {"succeeded", "rolled_back", "failed", "paused"}, timeout=300
        )
    assert final["state"] == "succeeded", (final["paused_reason"], final["reason"], final["last_analysis"])
    assert {p.name for p in replicas.dead()} == {"collector-2", "worker-2"}
