"""What the Temporal UI's list reads for a workflow: its search attributes, polled from visibility."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from temporalio.client import Client
from temporalio.common import TypedSearchAttributes

from adapters import search_attributes as search


async def attributes_of(
    temporal: Client,
    workflow_ids: list[str],
    until: Callable[[dict[str, TypedSearchAttributes]], bool],
    timeout: float = 30,
) -> dict[str, TypedSearchAttributes]:
    """The listed workflows' attributes as a visibility query returns them (what the UI's list
    shows), once `until` holds: upserts land in visibility a moment after the workflow task."""
    quoted = ", ".join(f"'{wid}'" for wid in workflow_ids)
    deadline = time.monotonic() + timeout
    found: dict[str, TypedSearchAttributes] = {}
    while time.monotonic() < deadline:
        found = {}
        # visibility lists newest first: a reused id (a building's rollout) gives its latest run
        async for row in temporal.list_workflows(f"WorkflowId IN ({quoted})"):
            found.setdefault(row.id, row.typed_search_attributes)
        if set(found) == set(workflow_ids) and until(found):
            return found
        await asyncio.sleep(0.2)
    shown = {wid: {p.key.name: p.value for p in attrs} for wid, attrs in found.items()}
    raise AssertionError(f"visibility never showed what was expected; last: {shown}")


def labels(attrs: TypedSearchAttributes) -> tuple[str | None, str | None, str | None, str | None]:
    """(unit, version, strategy, state): the columns that tell a rollout apart in the list."""
    return (
        attrs.get(search.UNIT),
        attrs.get(search.VERSION),
        attrs.get(search.STRATEGY),
        attrs.get(search.STATE),
    )
