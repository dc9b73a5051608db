"""POST /beacons: browsers report unit loads; refusals are 4xx and counted nowhere.

The loader posts from the shell's origin with `content-type: text/plain` (a
CORS simple request, no preflight per page load), so the body is read and
parsed here rather than by FastAPI, and every answer, refusals included,
carries `Access-Control-Allow-Origin: *` for the loader to read its status.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from api.beacons import (
    MAX_BEACONS_PER_REQUEST,
    REFUSED,
    Beacon,
    ManifestCatalog,
    RateLimiter,
    RefusalReason,
    parse_batch,
    record,
)
from api.deps import AppState
from api.errors import error_body

router = APIRouter(tags=["beacons"])

CORS = {"Access-Control-Allow-Origin": "*"}

# The body is parsed by hand (text/plain is accepted), so describe it for /docs.
_BATCH_SCHEMA = {
    "type": "object",
    "required": ["beacons"],
    "additionalProperties": False,
    "properties": {
        "beacons": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_BEACONS_PER_REQUEST,
            "items": Beacon.model_json_schema(),
        }
    },
}
_REQUEST_BODY = {
    "required": True,
    "content": {"application/json": {"schema": _BATCH_SCHEMA}, "text/plain": {"schema": _BATCH_SCHEMA}},
}


class BeaconsAccepted(BaseModel):
    accepted: int


class BeaconLimits:
    """Per-process state of the endpoint, built from settings on first use."""

    def __init__(self, state: AppState) -> None:
        s = state.settings
        self.max_bytes = s.beacon_max_bytes
        self.catalog = ManifestCatalog.from_store(state.store, ttl=s.beacon_manifest_cache_seconds)
        self.limiter = RateLimiter(rate=s.beacon_rate_per_second, burst=s.beacon_burst)


def _limits(request: Request) -> BeaconLimits:
    limits: BeaconLimits | None = getattr(request.app.state, "beacon_limits", None)
    if limits is None:
        limits = BeaconLimits(request.app.state.skyline)
        request.app.state.beacon_limits = limits
    return limits


def _refuse(
    reason: RefusalReason,
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    REFUSED.labels(reason).inc()
    return JSONResponse(error_body(status, code, message, field), status, headers={**CORS, **(headers or {})})


async def _body(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is longer than `limit` (not read further)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _field(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "body"


@router.post(
    "/beacons",
    status_code=202,
    response_model=BeaconsAccepted,
    openapi_extra={"requestBody": _REQUEST_BODY},
    responses={
        400: {"description": "body is not JSON"},
        413: {"description": "body larger than the limit"},
        422: {"description": "a beacon is malformed or names something the manifest does not hold"},
        429: {"description": "too many beacon requests from this client"},
    },
)
async def post_beacons(request: Request) -> Response:
    """Count unit loads reported by the loader: `{"beacons": [{apartment, building, unit,
    version, outcome, load_seconds}]}` (or one bare beacon). All or nothing: if one
    beacon is refused, none of the request is counted."""
    limits = _limits(request)
    client = request.client.host if request.client else "unknown"
    wait = limits.limiter.take(client)
    if wait > 0:
        return _refuse(
            "rate_limited",
            429,
            "rate_limited",
            f"too many beacon requests from {client}; retry after {wait:.1f} s or batch beacons",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    raw = await _body(request, limits.max_bytes)
    if raw is None:
        return _refuse(
            "too_large",
            413,
            "beacon_too_large",
            f"the body is larger than {limits.max_bytes} bytes; send at most 20 beacons per request",
        )
    try:
        payload: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _refuse("malformed", 400, "invalid_json", f"the body is not JSON: {exc}")
    except RecursionError:
        return _refuse("malformed", 400, "invalid_json", "the body nests JSON too deeply; send flat beacons")
    if not isinstance(payload, dict):
        return _refuse(
            "invalid",
            422,
            "invalid_beacon",
            'the body must be a JSON object: {"beacons": [{apartment, building, unit, version, '
            "outcome, load_seconds}, ...]}",
            "body",
        )
    try:
        batch = parse_batch(payload)
    except ValidationError as exc:
        problems = exc.errors(include_url=False)
        message = "; ".join(
            f"{_field(tuple(p['loc']))}: {str(p['msg']).removeprefix('Value error, ')}" for p in problems
        )
        return _refuse("invalid", 422, "invalid_beacon", message, _field(tuple(problems[0]["loc"])))
    for index, beacon in enumerate(batch.beacons):
        problem = await limits.catalog.unknown(beacon)
        if problem is not None:
            field, message = problem
            return _refuse(
                "unknown_label",
                422,
                "unknown_label",
                f"{message}; a beacon names what the manifest holds",
                f"beacons.{index}.{field}",
            )
    record(batch.beacons)
    return JSONResponse({"accepted": len(batch.beacons)}, 202, headers=CORS)


@router.options("/beacons", include_in_schema=False)
async def beacons_preflight() -> Response:
    """For clients that send application/json: allow it, and cache the answer a day."""
    return Response(
        status_code=204,
        headers={
            **CORS,
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "content-type",
            "Access-Control-Max-Age": "86400",
        },
    )
