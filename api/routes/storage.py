"""Storage collection: published files past the retention window (`skyline manifest gc`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapters.cdn import make_cdn_provider
from adapters.pins import CollectionRunning, CorruptPin, LeaseLost, temporal_alive
from adapters.retention import CollectionResult, StorageCollector, UnreadableManifest
from api.access import RANK
from api.auth import Caller
from api.deps import SettingsDep, StoreDep, TemporalDep
from api.errors import ApiError
from skyline.manifest import SLUG, SLUG_HELP
from skyline.settings import Settings

log = logging.getLogger(__name__)
router = APIRouter(prefix="/storage", tags=["storage"])


class CollectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dry_run: bool = Field(default=True, description="list what would be deleted and why; delete nothing")
    apartment: str | None = Field(
        default=None, description="collect only files this apartment's revisions named (default: all)"
    )
    actor: str = Field(default="anonymous", max_length=200)
    reason: str = Field(default="", max_length=2000)

    @field_validator("apartment")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        if value is not None and not SLUG.match(value):
            raise ValueError(f"must be {SLUG_HELP} characters (got {value!r})")
        return value


def edge_purge(settings: Settings) -> Callable[[list[str]], None]:
    provider = make_cdn_provider(settings)
    return lambda keys: provider.purge([settings.edge_path(k) for k in keys])


@router.post("/gc", response_model=CollectionResult)
async def collect(
    req: CollectRequest, store: StoreDep, settings: SettingsDep, temporal: TemporalDep, who: Caller
) -> CollectionResult:
    """Files every revision naming them stopped being served more than `SKYLINE_RETENTION` ago.

    A dry run (the default; deployer) lists them with the revision that named them last and
    when it stopped being served; `dry_run: false` (admin) deletes exactly those.
    """
    needed = "deployer" if req.dry_run else "admin"
    if RANK[who.role] < RANK[needed]:
        raise ApiError(
            403,
            "forbidden",
            f"token {who.name!r} has role {who.role}; this needs {needed} or higher "
            "(a dry run needs deployer, deleting admin)",
        )
    if req.apartment is not None and await asyncio.to_thread(store.read, req.apartment) is None:
        raise ApiError(404, "not_found", f"no apartment {req.apartment!r}", "apartment")
    collector = StorageCollector(
        store,
        settings.public_url(""),
        alive=temporal_alive(temporal, asyncio.get_running_loop()),
        purge=None if req.dry_run else edge_purge(settings),
    )
    scope = {req.apartment} if req.apartment is not None else None
    try:
        result = await asyncio.to_thread(
            collector.collect, datetime.now(UTC), settings.retention, dry_run=req.dry_run, apartments=scope
        )
    except UnreadableManifest as exc:
        raise ApiError(409, "manifest_unreadable", f"{exc}; nothing collected") from exc
    except CorruptPin as exc:
        raise ApiError(409, "pin_unreadable", f"pin {exc} does not parse; nothing collected") from exc
    except CollectionRunning as exc:
        raise ApiError(409, "collection_running", f"{exc}; try again when it has finished") from exc
    except LeaseLost as exc:
        raise ApiError(503, "collection_interrupted", str(exc)) from exc
    if not req.dry_run:
        log.info(
            "gc by %s: %d files (%d bytes) deleted; reason: %s",
            who.actor(req.actor), result.deleted, result.bytes, req.reason,
        )  # fmt: skip
    return result
