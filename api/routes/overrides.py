"""POST /overrides: a deployer's signed override link. GET /overrides/unit: what the loader loads.

An override makes one browser load a chosen published version of one building
(a version at 0 % included) until it expires; api/overrides.py has the token and
its threat model. The loader never takes URLs from the token: it sends the token
to `GET /overrides/unit`, which verifies it and answers the unit Skyline
published (entry, SRI, files), public like /beacon-token (a page calls it), CORS
`*`, never cached.
"""

from __future__ import annotations

import asyncio
import logging
import math
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from adapters.evidence import EvidenceUnavailable
from api.auth import Caller
from api.beacon_tokens import TokenError
from api.errors import ApiError, error_body
from api.overrides import OverrideRevocations, Revocation
from api.routes.beacons import CORS, RETRY_SOON, STORE_DOWN, STORE_DOWN_RESPONSE, _limits, store_down
from skyline.manifest import SLUG, Unit

log = logging.getLogger(__name__)

router = APIRouter(prefix="/overrides", tags=["overrides"])

# The query parameter of a shell page the loader reads an override from.
PARAM = "skyline_override"


class OverrideRequest(BaseModel):
    apartment: str = Field(pattern=SLUG.pattern)
    building: str = Field(pattern=SLUG.pattern)
    version: str = Field(min_length=1, max_length=100)
    unit: str | None = Field(
        default=None, min_length=1, max_length=100, description="default: the building's unit of that version"
    )
    ttl_seconds: float | None = Field(default=None, ge=1, description="default SKYLINE_OVERRIDE_TTL_SECONDS")
    shell_url: str | None = Field(
        default=None, max_length=2000, description="a shell page: the answer's `link` opens it overridden"
    )


class OverrideEntry(BaseModel):
    url: str
    integrity: str


class OverrideIssued(BaseModel):
    token: str
    apartment: str
    building: str
    unit: str
    version: str
    expires_at: int
    issuer: str
    param: str = PARAM
    entry: OverrideEntry
    link: str | None = None


class OverrideUnit(BaseModel):
    apartment: str
    building: str
    expires_at: int
    unit: Unit


class RevokeRequest(BaseModel):
    token: str = Field(min_length=1, max_length=4096, description="the override's token (or its whole link)")


def _revocations(request: Request) -> OverrideRevocations:
    found: OverrideRevocations | None = getattr(request.app.state, "override_revocations", None)
    if found is None:
        state = request.app.state.skyline
        found = OverrideRevocations(
            state.tokens.s3, state.settings.s3_bucket, state.settings.token_cache_seconds
        )
        request.app.state.override_revocations = found
    return found


def _token_of(given: str) -> str:
    """The token of a `?skyline_override=` link, or `given` itself."""
    if "://" in given or given.startswith("?"):
        for name, value in parse_qsl(urlsplit(given).query or given.lstrip("?")):
            if name == PARAM:
                return value
    return given


def override_link(shell_url: str, token: str) -> str:
    """The shell URL with `?skyline_override=<token>` added (its other parameters kept)."""
    parts = urlsplit(shell_url)
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit(parts._replace(query=query + urlencode({PARAM: token})))


@router.post(
    "",
    status_code=201,
    response_model=OverrideIssued,
    responses={404: {"description": "no such apartment, building or published version"}},
)
async def issue_override(req: OverrideRequest, request: Request, who: Caller) -> OverrideIssued:
    """A signed, short-lived override: the browser that opens `link` (or stores `token`)
    loads `unit@version` for `building`, whatever its traffic share, until `expires_at`."""
    limits = _limits(request)
    settings = request.app.state.skyline.settings
    store = request.app.state.skyline.store
    ttl = req.ttl_seconds if req.ttl_seconds is not None else settings.override_ttl_seconds
    if ttl > settings.override_max_ttl_seconds:
        raise ApiError(
            422,
            "ttl_too_long",
            f"an override lives at most {settings.override_max_ttl_seconds:g} s "
            "(SKYLINE_OVERRIDE_MAX_TTL_SECONDS)",
            "ttl_seconds",
        )
    if req.shell_url is not None and urlsplit(req.shell_url).scheme not in ("http", "https"):
        raise ApiError(422, "invalid_shell_url", "shell_url must be an http(s) URL", "shell_url")
    current = await asyncio.to_thread(store.read, req.apartment)
    if current is None or req.apartment not in current[0].apartments:
        raise ApiError(404, "not_found", f"no apartment {req.apartment!r}", "apartment")
    if req.building not in current[0].apartments[req.apartment].buildings:
        raise ApiError(
            404, "not_found", f"apartment {req.apartment!r} has no building {req.building!r}", "building"
        )
    unit = await asyncio.to_thread(store.find_unit, req.apartment, req.building, req.version, req.unit)
    if unit is None:
        named = f"{req.unit}@{req.version}" if req.unit else f"version {req.version}"
        raise ApiError(
            404,
            "unknown_version",
            f"no published {named} in {req.apartment}/{req.building} (none of its manifests, "
            "head, preview or revisions, holds it; or several units have that version: name `unit`)",
            "version",
        )
    token, override = limits.overrides.issue(
        req.apartment, req.building, unit.name, unit.version, ttl, who.name
    )
    log.info(
        "override issued by %s: %s/%s -> %s until %d",
        who.name,
        req.apartment,
        req.building,
        unit.id,
        override.expires_at,
    )
    return OverrideIssued(
        token=token,
        apartment=req.apartment,
        building=req.building,
        unit=unit.name,
        version=unit.version,
        expires_at=override.expires_at,
        issuer=who.name,
        entry=OverrideEntry(url=unit.url, integrity=unit.checksum),
        link=override_link(req.shell_url, token) if req.shell_url else None,
    )


@router.post(
    "/revoke",
    response_model=Revocation,
    responses={
        409: {"description": "the override has expired already"},
        422: {"description": "not an override token Skyline signed"},
    },
)
async def revoke_override(req: RevokeRequest, request: Request, who: Caller) -> Revocation:
    """Stop an override before it expires: `GET /overrides/unit` refuses its token from then on
    (every API process within SKYLINE_TOKEN_CACHE_SECONDS), so the loader forgets it."""
    token = _token_of(req.token)
    try:
        override = _limits(request).overrides.verify(token)
    except TokenError as exc:
        if exc.problem == "expired":
            message = "the override has expired already; nothing to revoke"
            raise ApiError(409, "override_expired", message) from exc
        raise ApiError(422, "invalid_override_token", exc.message, "token") from exc
    record = await asyncio.to_thread(_revocations(request).revoke, token, override, who.name)
    log.info(
        "override revoked by %s: %s/%s -> %s (was valid until %d)",
        who.name,
        override.apartment,
        override.building,
        override.key,
        override.expires_at,
    )
    return record


def _refusal(status: int, code: str, message: str, field: str | None = None,
             headers: dict[str, str] | None = None) -> JSONResponse:  # fmt: skip
    return JSONResponse(
        error_body(status, code, message, field),
        status,
        headers={**CORS, "Cache-Control": "no-store", **(headers or {})},
    )


@router.get(
    "/unit",
    response_model=OverrideUnit,
    responses={
        401: {"description": "not an override token Skyline signed, or expired"},
        404: {"description": "the overridden version is no longer in any manifest"},
        429: {"description": "too many requests from this client"},
        **STORE_DOWN_RESPONSE,
    },
)
async def override_unit(request: Request, token: str = "") -> Response:
    """The unit an override token names (entry URL, SRI, files), for the loader. Public:
    the signature and expiry are the check; the unit comes from Skyline's manifests."""
    limits = _limits(request)
    client = limits.client(request)
    try:
        wait = await limits.evidence.take(limits.token_rate(client))
    except EvidenceUnavailable as exc:
        return _refusal(503, STORE_DOWN, store_down(exc), headers=RETRY_SOON)
    if wait > 0:
        return _refusal(
            429,
            "rate_limited",
            f"too many requests from {client}; retry after {wait:.1f} s",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    try:
        override = limits.overrides.verify(token)
    except TokenError as exc:
        return _refusal(401, "invalid_override_token", exc.message, "token")
    if await asyncio.to_thread(_revocations(request).is_revoked, token):
        revoked = "the override was revoked; ask for a new one (POST /overrides)"
        return _refusal(401, "invalid_override_token", revoked, "token")
    unit = await asyncio.to_thread(
        limits.override_units.get, override.apartment, override.building, override.version, override.unit
    )
    if unit is None:
        return _refusal(
            404, "not_found", f"{override.key} is no longer published in {override.apartment}", "token"
        )
    body = OverrideUnit(
        apartment=override.apartment,
        building=override.building,
        expires_at=override.expires_at,
        unit=unit.model_copy(update={"rollout": None}),
    )
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True), 200, headers={**CORS, "Cache-Control": "no-store"}
    )
