"""Search attributes that make rollouts filterable in the Temporal UI and visibility queries."""

from __future__ import annotations

from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
)

APARTMENT = SearchAttributeKey.for_keyword("SkylineApartment")
BUILDING = SearchAttributeKey.for_keyword("SkylineBuilding")
VERSION = SearchAttributeKey.for_keyword("SkylineVersion")
STATE = SearchAttributeKey.for_keyword("SkylineState")
WEIGHT = SearchAttributeKey.for_float("SkylineWeight")

# name -> type, as `temporal server start-dev --search-attribute NAME=TYPE` takes them
REGISTRATION: dict[str, str] = {
    APARTMENT.name: "Keyword",
    BUILDING.name: "Keyword",
    VERSION.name: "Keyword",
    STATE.name: "Keyword",
    WEIGHT.name: "Double",
}


def initial(apartment: str, building: str, version: str) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(APARTMENT, apartment),
            SearchAttributePair(BUILDING, building),
            SearchAttributePair(VERSION, version),
            SearchAttributePair(STATE, "publishing"),
            SearchAttributePair(WEIGHT, 0.0),
        ]
    )
