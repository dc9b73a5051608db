"""Search attributes that make rollouts filterable in the Temporal UI and visibility queries.

Every run of one building shares the workflow id `rollout.<apartment>.<building>` (the id is the
building's lock: Temporal refuses a second running workflow with it). What tells the runs apart in
the UI's list is these attributes, shown as columns (LIST_COLUMNS): the unit, version and strategy
set when the rollout starts, and the state the workflow keeps up to date, which ends as
`succeeded`, `rolled_back` or `failed` while the UI's Status column says Completed for the first
two (a rolled-back rollout ends normally: it did what it was asked).

Fleets and pipelines carry the unit, version and (fleets) strategy too, and their state; the
rollouts and fleets they start as children get the same attributes an API-started one gets
(workflows/indexing.py), so a pipeline, its stages and their rollouts all read the same way.
"""

from __future__ import annotations

from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
)

APARTMENT = SearchAttributeKey.for_keyword("SkylineApartment")
BUILDING = SearchAttributeKey.for_keyword("SkylineBuilding")
VERSION = SearchAttributeKey.for_keyword("SkylineVersion")
UNIT = SearchAttributeKey.for_keyword("SkylineUnit")
STRATEGY = SearchAttributeKey.for_keyword("SkylineStrategy")
STATE = SearchAttributeKey.for_keyword("SkylineState")
WEIGHT = SearchAttributeKey.for_float("SkylineWeight")

# name -> type, as `temporal server start-dev --search-attribute NAME=TYPE` takes them
REGISTRATION: dict[str, str] = {
    APARTMENT.name: "Keyword",
    BUILDING.name: "Keyword",
    VERSION.name: "Keyword",
    UNIT.name: "Keyword",
    STRATEGY.name: "Keyword",
    STATE.name: "Keyword",
    WEIGHT.name: "Double",
}


# The Temporal UI's workflow list, as a release manager reads it: the UI's column picker keeps
# this list per namespace in the browser (localStorage `namespace-workflow-table-columns`).
LIST_COLUMNS: tuple[str, ...] = (
    "Status",
    "Workflow ID",
    UNIT.name,
    VERSION.name,
    STRATEGY.name,
    STATE.name,
    WEIGHT.name,
    "Start",
    "End",
)


def initial(
    apartment: str, building: str, version: str, unit: str | None = None, strategy: str | None = None
) -> TypedSearchAttributes:
    """What a rollout starts with; `unit` and `strategy` are left out only by callers that
    predate them (a rollout without them still lists, with those columns empty)."""
    named = [(UNIT, unit), (STRATEGY, strategy)]
    return TypedSearchAttributes(
        [
            SearchAttributePair(APARTMENT, apartment),
            SearchAttributePair(BUILDING, building),
            SearchAttributePair(VERSION, version),
            *(SearchAttributePair(key, value) for key, value in named if value is not None),
            SearchAttributePair(STATE, "publishing"),
            SearchAttributePair(WEIGHT, 0.0),
        ]
    )


def for_fleet(
    building: str, version: str, unit: str, strategy: str, state: str = "publishing"
) -> TypedSearchAttributes:
    """What a fleet starts with (no apartment: it has many; the state it keeps up to date)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(BUILDING, building),
            SearchAttributePair(VERSION, version),
            SearchAttributePair(UNIT, unit),
            SearchAttributePair(STRATEGY, strategy),
            SearchAttributePair(STATE, state),
        ]
    )


def for_pipeline(building: str, version: str, unit: str, state: str = "progressing") -> TypedSearchAttributes:
    """What a pipeline starts with (its stages choose their own strategies and apartments)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(BUILDING, building),
            SearchAttributePair(VERSION, version),
            SearchAttributePair(UNIT, unit),
            SearchAttributePair(STATE, state),
        ]
    )
