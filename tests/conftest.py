"""Session fixtures: the real embedded stack on ephemeral ports, started once.

Temporal dev server, moto S3, Varnish, Prometheus, the worker and the API all
run as separate processes exactly as `make run` starts them, so the tests
exercise the same wiring a release manager uses.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from adapters.search_attributes import REGISTRATION
from adapters.storage import s3_client
from skyline.settings import Settings
from stack.embedded import EmbeddedStack, StackPorts
from stack.processes import free_port
from tests.support.rum import RumTarget
from tests.support.webhooks import WEBHOOK_HOST

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
# `make test` runs the suite in two processes (pytest-xdist); each has its own stack and logs.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
FAULTS = Path(__file__).resolve().parent / "faults"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Whole files to one process (module fixtures are set up once), the fault suite as one
    unit (its private stack is started once) and first, so it never runs alone at the end."""
    faults = {item.nodeid: FAULTS in Path(str(item.path)).parents for item in items}
    for item in items:
        group = "faults" if faults[item.nodeid] else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=lambda item: not faults[item.nodeid])


@pytest.fixture(scope="session")
def rum() -> Iterator[RumTarget]:
    target = RumTarget(free_port())
    yield target
    target.close()


@pytest.fixture(scope="session")
def stack(rum: RumTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    state = tmp_path_factory.mktemp("stack")
    embedded = EmbeddedStack(
        state,
        StackPorts.ephemeral(),
        prometheus_scrape_interval="1s",
        extra_scrape_targets=[rum.address],
        search_attributes=REGISTRATION,
        # The stack's collector runs (tests/api/test_collector.py), but the API keeps serving
        # browser routes itself: the suite posts beacons to it and reads them from its
        # /metrics. The 308 to a collector is tested on its own (same file, tests/browser).
        api_redirects_browsers=False,
        settings=Settings(
            # Tests write bundles under their tmp_path: the session's base temp dir is the root.
            bundle_root=tmp_path_factory.getbasetemp(),
            # Webhook receivers of the tests listen on their own loopback address
            # (tests/support/webhooks.py); the stack's servers on 127.0.0.1 stay refused.
            webhook_allowed_hosts=[WEBHOOK_HOST],
        ),
    )
    try:
        embedded.start()
        yield embedded
    finally:
        embedded.stop()
        # Keep the servers' logs where CI and humans can read them.
        logs = state / "logs"
        if logs.is_dir():
            name = f"stack-logs-{WORKER}" if WORKER else "stack-logs"
            shutil.copytree(logs, ARTIFACTS / name, dirs_exist_ok=True)


@pytest.fixture(scope="session")
def settings(stack: EmbeddedStack) -> Settings:
    values = {k.removeprefix("SKYLINE_").lower(): v for k, v in stack.env().items()}
    return Settings.model_validate(values)


@pytest.fixture(scope="session")
def s3(settings: Settings):  # type: ignore[no-untyped-def]
    return s3_client(settings)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def temporal(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )


@pytest_asyncio.fixture(loop_scope="session")
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    base = f"http://{settings.api_host}:{settings.api_port}"
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session")
async def edge(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=settings.edge_url, timeout=30) as client:
        yield client
