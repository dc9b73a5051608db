"""Apartments (shell applications) and their manifest revisions."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field, field_validator

from api.deps import StoreDep
from api.errors import ApiError
from skyline.manifest import SLUG, SLUG_HELP, Apartment, ApartmentManifest, ManifestChange
from skyline.manifest_ops import CreateApartment, ManifestConflict

router = APIRouter(prefix="/apartments", tags=["apartments"])


class CreateApartmentRequest(BaseModel):
    id: str
    apartment: Apartment
    actor: str = Field(default="anonymous", max_length=200)
    reason: str = Field(default="create apartment", max_length=2000)

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG.match(value):
            raise ValueError(f"must be {SLUG_HELP} characters (got {value!r})")
        return value


class RevisionList(BaseModel):
    apartment: str
    current: int
    revisions: list[int]


def _manifest_or_404(store: StoreDep, apartment: str) -> ApartmentManifest:
    found = store.read(apartment)
    if found is None:
        raise ApiError(404, "not_found", f"no apartment {apartment!r}; create it with POST /apartments")
    return found[0]


@router.post("", status_code=201)
async def create_apartment(req: CreateApartmentRequest, store: StoreDep) -> dict[str, Any]:
    """Register a shell application and its buildings (manifest revision 1)."""
    change = ManifestChange(id=f"create/{req.id}/{uuid.uuid4()}", actor=req.actor, reason=req.reason)
    try:
        manifest, _ = await asyncio.to_thread(
            store.apply, req.id, CreateApartment(apartment=req.apartment), change
        )
    except ManifestConflict as exc:
        raise ApiError(409, "apartment_exists", str(exc), "id") from exc
    return manifest.model_dump(mode="json", by_alias=True, exclude_none=True)


@router.get("/{apartment}/manifest")
async def get_manifest(apartment: str, store: StoreDep) -> dict[str, Any]:
    """The manifest shells load, as stored at the origin (the edge may lag by one purge)."""
    manifest = await asyncio.to_thread(_manifest_or_404, store, apartment)
    return manifest.model_dump(mode="json", by_alias=True, exclude_none=True)


@router.get("/{apartment}/revisions", response_model=RevisionList)
async def list_revisions(apartment: str, store: StoreDep) -> RevisionList:
    manifest = await asyncio.to_thread(_manifest_or_404, store, apartment)
    revisions = await asyncio.to_thread(store.list_revisions, apartment)
    return RevisionList(apartment=apartment, current=manifest.revision, revisions=revisions)


@router.get("/{apartment}/revisions/{revision}")
async def get_revision(apartment: str, revision: int, store: StoreDep) -> dict[str, Any]:
    found = await asyncio.to_thread(store.read_revision, apartment, revision)
    if found is None:
        raise ApiError(404, "not_found", f"apartment {apartment!r} has no revision {revision}")
    return found.model_dump(mode="json", by_alias=True, exclude_none=True)
