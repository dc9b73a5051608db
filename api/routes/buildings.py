"""An apartment's buildings: add, rename and remove them, each a manifest revision.

Every write is a structural change (skyline/manifest_ops.py) the manifest store applies
through its If-Match loop, recorded as a revision whose `change` says who and why, and
may carry the caller's own `If-Match` (the revision it last read). A building a rollout
is running on cannot be renamed or removed (409 `rollout_running`): the workflow writes
to it by id, and its rollback restores the building as it found it.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import Field, field_validator, model_validator

from api.auth import Caller
from api.deps import StoreDep, TemporalDep
from api.errors import ApiError
from api.routes.apartments import (
    ApartmentView,
    IfMatch,
    StructureRequest,
    _manifest_or_404,
    apartment_view,
    etag,
    expected_revision,
    running_rollouts,
    write_structure,
)
from skyline.manifest import SLUG, SLUG_HELP, Building, Category, RoutingConfig
from skyline.manifest_ops import AddBuilding, EditBuilding, RemoveBuilding

router = APIRouter(prefix="/apartments/{apartment}/buildings", tags=["apartments"])


def _slug(value: str | None) -> str | None:
    if value is not None and not SLUG.match(value):
        raise ValueError(f"must be {SLUG_HELP} characters (got {value!r})")
    return value


class AddBuildingRequest(StructureRequest):
    id: str = Field(description="the building's id: shells mount it as data-skyline-building=<id>")
    name: str = Field(min_length=1, max_length=200)
    category: Category
    mount: str | None = Field(
        default=None, max_length=500, description="routing.mount: a CSS selector shells mount into"
    )

    _id = field_validator("id")(_slug)


class EditBuildingRequest(StructureRequest):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    id: str | None = Field(default=None, description="a new id (only for a building no unit shipped to)")

    _id = field_validator("id")(_slug)

    @model_validator(mode="after")
    def _something(self) -> EditBuildingRequest:
        if self.name is None and self.id is None:
            raise ValueError("give `name` or `id` (nothing to change)")
        return self


async def _refuse_if_rolling_out(temporal: TemporalDep, apartment: str, building: str, doing: str) -> None:
    """409 while a rollout runs on the building, even before it has written a canary."""
    running = await running_rollouts(temporal, apartment, [building])
    if running:
        raise ApiError(
            409,
            "rollout_running",
            f"rollout {running[0]} is running on building {building!r}; it cannot be {doing} until "
            "the rollout ends (promote or roll it back)",
        )


async def _known_building(store: StoreDep, apartment: str, building: str) -> None:
    manifest = await asyncio.to_thread(_manifest_or_404, store, apartment)
    buildings = manifest.apartment(apartment).buildings
    if building not in buildings:
        known = ", ".join(sorted(buildings)) or "none"
        message = f"apartment {apartment!r} has no building {building!r} (known: {known})"
        raise ApiError(404, "not_found", message, "building")


@router.post("", status_code=201, response_model=ApartmentView)
async def add_building(
    apartment: str,
    req: AddBuildingRequest,
    response: Response,
    store: StoreDep,
    who: Caller,
    if_match: IfMatch = None,
) -> ApartmentView:
    """Add an empty building; roll a unit out to it with POST /rollouts."""
    spec = Building(name=req.name, category=req.category, routing=RoutingConfig(mount=req.mount))
    mutation = AddBuilding(building=req.id, spec=spec, if_revision=expected_revision(if_match))
    what = f"add building {req.id}"
    manifest = await write_structure(store, apartment, mutation, who, req.actor, what, req.reason)
    response.headers["ETag"] = etag(manifest)
    return apartment_view(apartment, manifest)


@router.patch("/{building}", response_model=ApartmentView)
async def edit_building(
    apartment: str,
    building: str,
    req: EditBuildingRequest,
    response: Response,
    store: StoreDep,
    temporal: TemporalDep,
    who: Caller,
    if_match: IfMatch = None,
) -> ApartmentView:
    """Rename a building: its `name`, or its `id` while no unit has shipped to it."""
    revision = expected_revision(if_match)
    await _known_building(store, apartment, building)
    await _refuse_if_rolling_out(temporal, apartment, building, "renamed")
    mutation = EditBuilding(building=building, name=req.name, new_id=req.id, if_revision=revision)
    changes = ([f"id to {req.id}"] if req.id not in (None, building) else []) + (
        [f"name to {req.name!r}"] if req.name is not None else []
    )
    what = f"rename building {building}: " + (", ".join(changes) or "unchanged")
    manifest = await write_structure(store, apartment, mutation, who, req.actor, what, req.reason)
    response.headers["ETag"] = etag(manifest)
    return apartment_view(apartment, manifest)


@router.delete("/{building}", response_model=ApartmentView)
async def remove_building(
    apartment: str,
    building: str,
    response: Response,
    store: StoreDep,
    temporal: TemporalDep,
    who: Caller,
    if_match: IfMatch = None,
    actor: Annotated[str, Query(max_length=200)] = "anonymous",
    reason: Annotated[str, Query(max_length=2000)] = "",
) -> ApartmentView:
    """Remove a building no unit has shipped to (409 `building_not_empty` otherwise)."""
    revision = expected_revision(if_match)
    await _known_building(store, apartment, building)
    await _refuse_if_rolling_out(temporal, apartment, building, "removed")
    mutation = RemoveBuilding(building=building, if_revision=revision)
    manifest = await write_structure(
        store, apartment, mutation, who, actor, f"remove building {building}", reason
    )
    response.headers["ETag"] = etag(manifest)
    return apartment_view(apartment, manifest)
