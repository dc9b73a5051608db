"""Apartments (shell applications) and their manifest revisions."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from adapters.manifest_store import WriteContention
from adapters.retention import StorageCollector
from api.auth import Caller, Principal
from api.deps import SettingsDep, StoreDep, TemporalDep
from api.errors import ApiError
from skyline.contracts import UNDO_WORKFLOW, UndoInput, UndoResult, undo_workflow_id
from skyline.manifest import SLUG, SLUG_HELP, Apartment, ApartmentManifest, Building, ManifestChange
from skyline.manifest_diff import Change, diff
from skyline.manifest_ops import (
    BuildingRefused,
    CreateApartment,
    EditApartment,
    ManifestConflict,
    MissingBuilding,
    StaleRevision,
    StructureChange,
)
from skyline.rollout import rollout_id_for
from skyline.split import Assignment, SplitUser, resolve

log = logging.getLogger(__name__)
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


class ApartmentSummary(BaseModel):
    id: str
    name: str
    revision: int = Field(description="the current manifest revision")
    buildings: list[str]


@router.get("", response_model=list[ApartmentSummary])
async def list_apartments(store: StoreDep, who: Caller) -> list[ApartmentSummary]:
    """Every apartment in storage with its current revision, sorted by id."""

    def read_all() -> list[ApartmentSummary]:
        found: list[ApartmentSummary] = []
        for apartment in store.list_apartments():
            try:
                head = store.read(apartment)
            except ValueError:  # not a manifest Skyline wrote (pydantic's errors are ValueErrors)
                log.warning("skipping %s: its manifest.json does not validate", apartment)
                continue
            if head is None:  # a revisions/ prefix without a head: not an apartment (yet)
                continue
            manifest = head[0]
            entry = manifest.apartments.get(apartment)
            found.append(
                ApartmentSummary(
                    id=apartment,
                    name=entry.name if entry is not None else apartment,
                    revision=manifest.revision,
                    buildings=sorted(entry.buildings) if entry is not None else [],
                )
            )
        return found

    return await asyncio.to_thread(read_all)


@router.post("", status_code=201)
async def create_apartment(req: CreateApartmentRequest, store: StoreDep, who: Caller) -> dict[str, Any]:
    """Register a shell application and its buildings (manifest revision 1)."""
    change = ManifestChange(
        id=f"create/{req.id}/{uuid.uuid4()}", actor=who.actor(req.actor), reason=req.reason
    )
    try:
        manifest, _ = await asyncio.to_thread(
            store.apply, req.id, CreateApartment(apartment=req.apartment), change
        )
    except ManifestConflict as exc:
        raise ApiError(409, "apartment_exists", str(exc), "id") from exc
    return manifest.model_dump(mode="json", by_alias=True, exclude_none=True)


class CanaryView(BaseModel):
    unit: str
    version: str
    percentage: float


class BuildingView(BaseModel):
    id: str
    name: str
    category: str
    active_unit: str | None = None
    active_version: str | None = None
    canary: CanaryView | None = Field(default=None, description="the unit in rollout, if any")
    units: list[str] = Field(description="every unit key the building holds (`<unit>@<version>`)")
    mount: str | None = Field(default=None, description="routing.mount: the CSS selector shells mount into")


class ApartmentView(BaseModel):
    """An apartment as a resource: what `GET /apartments/{id}` and every structural write answer."""

    id: str
    name: str
    description: str
    version: str = Field(description="the apartment's own version field (not the revision)")
    revision: int = Field(description="the manifest revision this view is of; the ETag is it, quoted")
    timestamp: str
    change: ManifestChange | None = Field(default=None, description="who wrote this revision, and why")
    buildings: list[BuildingView]


def building_view(building_id: str, building: Building) -> BuildingView:
    active = building.active()
    canary = building.canary()
    return BuildingView(
        id=building_id,
        name=building.name,
        category=building.category,
        active_unit=building.active_unit,
        active_version=active.version if active else None,
        canary=(
            CanaryView(unit=canary.id, version=canary.version, percentage=canary.rollout.percentage)
            if canary is not None and canary.rollout is not None
            else None
        ),
        units=sorted(building.units),
        mount=building.routing.mount,
    )


def apartment_view(apartment_id: str, manifest: ApartmentManifest) -> ApartmentView:
    entry = manifest.apartment(apartment_id)
    return ApartmentView(
        id=apartment_id,
        name=entry.name,
        description=entry.description,
        version=entry.version,
        revision=manifest.revision,
        timestamp=manifest.timestamp,
        change=manifest.change,
        buildings=[building_view(key, b) for key, b in entry.buildings.items()],
    )


def etag(manifest: ApartmentManifest) -> str:
    """A revision never changes once written, so its number is a strong validator."""
    return f'"{manifest.revision}"'


IF_MATCH_HELP = (
    'the revision you last read, as GET /apartments/{id} sent it in its ETag (e.g. "7"); '
    "the write is refused with 412 if the manifest has moved on since"
)
IfMatch = Annotated[str | None, Header(alias="If-Match", description=IF_MATCH_HELP)]


def expected_revision(if_match: str | None) -> int | None:
    """The revision an If-Match header names; None for no header or `*` (the apartment exists)."""
    if if_match is None or if_match.strip() == "*":
        return None
    value = if_match.strip()
    if value.startswith('"') and value.endswith('"') and len(value) >= 2:
        value = value[1:-1]
    if not value.isdigit() or not value.isascii():
        raise ApiError(
            422,
            "invalid_request",
            f'If-Match must be one revision\'s ETag, e.g. "7" (got {if_match[:100]!r}): '
            "a weak or listed tag never names a single revision",
            "If-Match",
        )
    return int(value)


class StructureRequest(BaseModel):
    """Who and why, as every manifest write records them (the revision's `change`)."""

    model_config = ConfigDict(extra="forbid")
    actor: str = Field(default="anonymous", max_length=200)
    reason: str = Field(default="", max_length=2000)


class EditApartmentRequest(StructureRequest):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _something(self) -> EditApartmentRequest:
        if self.name is None and self.description is None:
            raise ValueError("give `name` or `description` (nothing to change)")
        return self


async def write_structure(
    store: StoreDep,
    apartment: str,
    mutation: StructureChange,
    who: Principal,
    actor: str,
    what: str,
    reason: str,
) -> ApartmentManifest:
    """One structural change as a new manifest revision, through the store's If-Match loop.

    The change is data the store re-applies to whatever head it reads, so a write racing a
    rollout on another building composes with it; `mutation.if_revision` (the caller's
    If-Match) is checked against that same head, never against an earlier read.
    """
    await asyncio.to_thread(_manifest_or_404, store, apartment)
    change = ManifestChange(
        id=f"{mutation.kind}/{apartment}/{uuid.uuid4()}",
        actor=who.actor(actor),
        reason=f"{what}: {reason}" if reason else what,
    )
    try:
        manifest, _ = await asyncio.to_thread(store.apply, apartment, mutation, change)
    except StaleRevision as exc:
        raise ApiError(412, "precondition_failed", str(exc), "If-Match") from exc
    except MissingBuilding as exc:
        raise ApiError(404, "not_found", f"{exc} in apartment {apartment!r}", "building") from exc
    except BuildingRefused as exc:
        raise ApiError(409, exc.code, str(exc)) from exc
    except ManifestConflict as exc:  # the apartment vanished between the read and the write
        raise ApiError(404, "not_found", str(exc)) from exc
    except WriteContention as exc:
        raise ApiError(503, "write_contention", f"{exc}; try again") from exc
    log.info("apartment %s revision %d by %s: %s", apartment, manifest.revision, change.actor, change.reason)
    return manifest


@router.get("/{apartment}", response_model=ApartmentView)
async def get_apartment(apartment: str, response: Response, store: StoreDep, who: Caller) -> ApartmentView:
    """One apartment: its name, revision and buildings (what each runs, what is in rollout).

    The ETag is the revision; send it back as If-Match on a structural write."""
    manifest = await asyncio.to_thread(_manifest_or_404, store, apartment)
    response.headers["ETag"] = etag(manifest)
    return apartment_view(apartment, manifest)


@router.patch("/{apartment}", response_model=ApartmentView)
async def edit_apartment(
    apartment: str,
    req: EditApartmentRequest,
    response: Response,
    store: StoreDep,
    who: Caller,
    if_match: IfMatch = None,
) -> ApartmentView:
    """Change the apartment's name or description (a new revision; its id never changes)."""
    mutation = EditApartment(
        name=req.name, description=req.description, if_revision=expected_revision(if_match)
    )
    what = f"rename apartment to {req.name!r}" if req.name is not None else "edit apartment description"
    manifest = await write_structure(store, apartment, mutation, who, req.actor, what, req.reason)
    response.headers["ETag"] = etag(manifest)
    return apartment_view(apartment, manifest)


@router.get("/{apartment}/manifest")
async def get_manifest(apartment: str, store: StoreDep, who: Caller) -> dict[str, Any]:
    """The manifest shells load, as stored at the origin (the edge may lag by one purge)."""
    manifest = await asyncio.to_thread(_manifest_or_404, store, apartment)
    return manifest.model_dump(mode="json", by_alias=True, exclude_none=True)


@router.get("/{apartment}/revisions", response_model=RevisionList)
async def list_revisions(apartment: str, store: StoreDep, who: Caller) -> RevisionList:
    manifest = await asyncio.to_thread(_manifest_or_404, store, apartment)
    revisions = await asyncio.to_thread(store.list_revisions, apartment)
    return RevisionList(apartment=apartment, current=manifest.revision, revisions=revisions)


@router.get("/{apartment}/revisions/{revision}")
async def get_revision(apartment: str, revision: int, store: StoreDep, who: Caller) -> dict[str, Any]:
    found = await asyncio.to_thread(store.read_revision, apartment, revision)
    if found is None:
        raise ApiError(404, "not_found", f"apartment {apartment!r} has no revision {revision}")
    return found.model_dump(mode="json", by_alias=True, exclude_none=True)


class DiffResponse(BaseModel):
    apartment: str
    from_revision: int
    to_revision: int
    changes: list[Change]


class UndoRequest(BaseModel):
    to_revision: int = Field(ge=1)
    actor: str = Field(default="anonymous", max_length=200)
    reason: str = Field(default="", max_length=2000)


def _revision_or_404(store: StoreDep, apartment: str, revision: int) -> ApartmentManifest:
    found = store.read_revision(apartment, revision)
    if found is None:
        raise ApiError(404, "not_found", f"apartment {apartment!r} has no revision {revision}")
    return found


@router.get("/{apartment}/diff", response_model=DiffResponse)
async def diff_revisions(
    apartment: str,
    store: StoreDep,
    who: Caller,
    from_revision: Annotated[int, Query(alias="from", ge=1)],
    to_revision: Annotated[int | None, Query(alias="to", ge=1, description="default: current")] = None,
) -> DiffResponse:
    """What changed for shells between two revisions (dotted paths, old and new values)."""
    await asyncio.to_thread(_manifest_or_404, store, apartment)
    old = await asyncio.to_thread(_revision_or_404, store, apartment, from_revision)
    if to_revision is None:
        new = await asyncio.to_thread(_manifest_or_404, store, apartment)
    else:
        new = await asyncio.to_thread(_revision_or_404, store, apartment, to_revision)
    return DiffResponse(
        apartment=apartment, from_revision=old.revision, to_revision=new.revision, changes=diff(old, new)
    )


@router.get("/{apartment}/last-known-good")
async def last_known_good(apartment: str, store: StoreDep, who: Caller) -> dict[str, Any]:
    """The newest revision with no unit in rollout."""
    await asyncio.to_thread(_manifest_or_404, store, apartment)
    found = await asyncio.to_thread(store.last_known_good, apartment)
    if found is None:
        raise ApiError(404, "not_found", f"apartment {apartment!r} has no settled revision")
    return found.model_dump(mode="json", by_alias=True, exclude_none=True)


async def running_rollouts(temporal: TemporalDep, apartment: str, buildings: Iterable[str]) -> list[str]:
    """Ids of the rollouts running on these buildings (one rollout per building at a time)."""
    running = []
    for building in buildings:
        handle = temporal.get_workflow_handle(rollout_id_for(apartment, building))
        try:
            described = await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                continue
            raise
        if described.status == WorkflowExecutionStatus.RUNNING:
            running.append(handle.id)
    return running


@router.post("/{apartment}/undo", response_model=UndoResult)
async def undo(
    apartment: str,
    req: UndoRequest,
    store: StoreDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    who: Caller,
) -> UndoResult:
    """Write the apartment as revision `to_revision` had it, as a new revision, and purge the edge."""
    current = await asyncio.to_thread(_manifest_or_404, store, apartment)
    target = await asyncio.to_thread(_revision_or_404, store, apartment, req.to_revision)
    if req.to_revision == current.revision:
        raise ApiError(
            409, "nothing_to_undo", f"revision {req.to_revision} is already current", "to_revision"
        )
    # A revision whose files gc collected would serve missing files (docs/bundles.md#skew-protection).
    collector = StorageCollector(store, settings.public_url(""))
    missing = await asyncio.to_thread(collector.missing, target)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ApiError(
            409,
            "files_collected",
            f"revision {req.to_revision} names files storage no longer holds ({shown}): they were "
            "collected past the retention window (skyline manifest gc); undo to a newer revision",
            "to_revision",
        )
    running = await running_rollouts(temporal, apartment, current.apartment(apartment).buildings)
    if running:
        raise ApiError(
            409,
            "rollout_running",
            f"rollouts are running on this apartment ({', '.join(running)}); roll them back or let them "
            "finish before undoing",
        )
    try:
        result: UndoResult = await temporal.execute_workflow(
            UNDO_WORKFLOW,
            UndoInput(
                apartment=apartment,
                to_revision=req.to_revision,
                actor=who.actor(req.actor),
                reason=req.reason,
            ),
            id=undo_workflow_id(apartment),
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=f"undo {apartment} to revision {req.to_revision} (by {who.actor(req.actor)})",
            result_type=UndoResult,
        )
    except WorkflowAlreadyStartedError as exc:
        raise ApiError(409, "undo_running", f"an undo of {apartment!r} is already running") from exc
    return result


@router.get("/{apartment}/resolve", response_model=dict[str, Assignment])
async def resolve_user(
    apartment: str,
    store: StoreDep,
    who: Caller,
    user: Annotated[str, Query(min_length=1, max_length=256, description="stable user id")],
    region: Annotated[str | None, Query(max_length=64)] = None,
    segment: Annotated[list[str] | None, Query(max_length=50)] = None,
    flag: Annotated[list[str] | None, Query(max_length=50)] = None,
) -> dict[str, Assignment]:
    """Which unit each building serves this user now: the same rules as the browser loader."""
    manifest = await asyncio.to_thread(_manifest_or_404, store, apartment)
    person = SplitUser(id=user, region=region, segments=segment or [], flags=flag or [])
    return resolve(manifest, apartment, person)
