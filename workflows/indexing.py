"""Search attributes kept by fleets and pipelines, and given to the children they start.

Only a workflow started with Skyline's attributes (the API sets them: adapters/search_attributes.py)
indexes itself and labels its children: a namespace without them registered (the time-skipping test
server) would fail every upsert and every child start that names them. Behind one patch, so
histories from before replay as they were.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import TypedSearchAttributes

with workflow.unsafe.imports_passed_through():
    from adapters import search_attributes as search

PATCH = "index-fleets-pipelines-and-children"


def indexed() -> bool:
    """Started with Skyline's attributes (and the code that indexes is in this run's history)."""
    return workflow.info().typed_search_attributes.get(search.UNIT) is not None and workflow.patched(PATCH)


def child_rollout(
    apartment: str, building: str, version: str, unit: str, strategy: str
) -> TypedSearchAttributes | None:
    """A child rollout's attributes, as the API would start it; None when this run is not indexed."""
    return search.initial(apartment, building, version, unit, strategy) if indexed() else None


def child_fleet(building: str, version: str, unit: str, strategy: str) -> TypedSearchAttributes | None:
    """A child fleet's attributes, as the API would start it; None when this run is not indexed."""
    return search.for_fleet(building, version, unit, strategy) if indexed() else None


def index_state(state: str) -> None:
    """Keep SkylineState equal to the workflow's state (upserted only when it changes)."""
    if indexed() and workflow.info().typed_search_attributes.get(search.STATE) != state:
        workflow.upsert_search_attributes([search.STATE.value_set(state)])
