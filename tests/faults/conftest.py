"""The fault suite's own stack: killing and restarting its servers never touches the session stack.

One rig for the whole package (its start-up is paid once); an autouse
fixture puts back whatever a test left stopped, so one failing test does not
take the others down with it.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client

from bench.loads import SyntheticRum
from bench.rig import COMPONENTS, Rig
from skyline.settings import Settings
from stack.processes import free_port
from tests.conftest import ARTIFACTS


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: kills, stops and restarts servers of a private stack (tests/faults)"
    )


@pytest.fixture(scope="package")
def loads() -> Iterator[SyntheticRum]:
    target = SyntheticRum(free_port())
    yield target
    target.close()


@pytest.fixture(scope="package")
def rig(loads: SyntheticRum, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    state = tmp_path_factory.mktemp("faults")
    # Bundles are written under each test's tmp_path: the base temp dir is the bundle root.
    settings = Settings(bundle_root=tmp_path_factory.getbasetemp())
    r = Rig(state, scrape_targets=[loads.address], scrape_interval="1s", proxy_s3=True, settings=settings)
    try:
        r.start()
        yield r
    finally:
        r.stop()
        logs = state / "logs"
        if logs.is_dir():
            shutil.copytree(logs, ARTIFACTS / "fault-logs", dirs_exist_ok=True)


@pytest.fixture(autouse=True)
def whole_rig(rig: Rig) -> Iterator[None]:
    """Every server up before a test, and again after it (whatever it stopped)."""

    def mend() -> None:
        if rig.proxy is not None and not rig.proxy.is_up:
            rig.proxy.up()
        for name in COMPONENTS:
            if not rig.running(name):
                rig.stop_component(name)
                rig.start_component(name)
        if rig.pid("worker") is None:
            rig.start_worker()

    mend()
    yield
    mend()


@pytest_asyncio.fixture(loop_scope="session")
async def client(rig: Rig) -> Client:
    return await rig.temporal()


@pytest_asyncio.fixture(loop_scope="session")
async def rig_api(rig: Rig) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=rig.api_url, timeout=60) as http:
        yield http


@pytest_asyncio.fixture(loop_scope="session")
async def rig_edge(rig: Rig) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=rig.edge_url, timeout=30) as http:
        yield http
