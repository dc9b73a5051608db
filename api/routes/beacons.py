"""POST /beacons: browsers report unit loads; refusals are 4xx and counted nowhere.
GET /beacon-token: the signed token a page sends with its beacons.

The loader posts from the shell's origin with `content-type: text/plain` (a
CORS simple request, no preflight per page load), so the body is read and
parsed here rather than by FastAPI, and every answer, refusals included,
carries `Access-Control-Allow-Origin: *` for the loader to read its status.

Where the token comes from, and why there: the loader and the manifest are
served by the edge (the loader immutable under its hash, the manifest shared
by every page), so neither can carry a per-page secret. The token is one small
GET to the API per page load, made after the page read the manifest (it names
the revision it read, so a token always covers the canary the page may load),
answered `Cache-Control: no-store`: each answer is a new session, and a cached
one would let many pages share (and exhaust) one session's cap.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import time
from typing import Any, NamedTuple

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

from adapters.evidence import EvidenceLedger, EvidenceUnavailable, MemoryEvidence, RedisEvidence, Sighting
from api.beacon_tokens import (
    BeaconSigner,
    BucketKeys,
    Claims,
    TokenError,
    assigned_units,
    loadable_units,
)
from api.beacons import (
    MAX_BEACONS_PER_REQUEST,
    REFUSED,
    TOKENS,
    Beacon,
    BeaconBatch,
    ManifestCatalog,
    RefusalReason,
    parse_batch,
    record,
    touch,
)
from api.deps import AppState
from api.errors import error_body
from api.overrides import MAX_OVERRIDES, OverrideSigner, UnitCache
from skyline.manifest import SLUG
from skyline.networks import client_address, network_of, parse_networks
from skyline.observability import child
from skyline.rate_limit import RateCheck

log = logging.getLogger(__name__)

router = APIRouter(tags=["beacons"])

CORS = {"Access-Control-Allow-Origin": "*"}
# The shared evidence store did not answer (store_down): the browser routes' 503.
STORE_DOWN = "evidence_store_unavailable"
STORE_DOWN_RESPONSE: dict[int | str, dict[str, Any]] = {
    503: {"description": "the shared evidence store did not answer; retry after a second"}
}
RETRY_SOON = {"Retry-After": "1"}
_outage_logged_at = -math.inf


class _Accepted(Response):
    """The 202 of a beacon request, its body and headers rendered once (one per page load)."""

    _rendered = {
        n: (body, Response(body, 202, headers=CORS, media_type="application/json").raw_headers)
        for n in range(1, MAX_BEACONS_PER_REQUEST + 1)
        for body in [json.dumps({"accepted": n}).encode()]
    }

    def __init__(self, accepted: int) -> None:
        self.status_code = 202
        self.background = None
        body, headers = self._rendered[accepted]
        self.body = body
        self.raw_headers = list(headers)  # a middleware may add to this request's own list


# The body is parsed by hand (text/plain is accepted), so describe it for /docs.
_BATCH_SCHEMA = {
    "type": "object",
    "required": ["token", "beacons"],
    "additionalProperties": False,
    "properties": {
        "token": {"type": "string", "description": "from GET /beacon-token", "maxLength": 4096},
        "beacons": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_BEACONS_PER_REQUEST,
            "items": Beacon.model_json_schema(),
        },
    },
}
_REQUEST_BODY = {
    "required": True,
    "content": {"application/json": {"schema": _BATCH_SCHEMA}, "text/plain": {"schema": _BATCH_SCHEMA}},
}


class BeaconsAccepted(BaseModel):
    accepted: int


class BeaconToken(BaseModel):
    token: str
    apartment: str
    session: str
    expires_at: int
    units: dict[str, list[str]]
    # building -> the unit a valid override token (`?override=`) makes this page load
    overrides: dict[str, list[str]] = {}
    # The browser's signed bucket key: the one it sent, or a new one when it sent none valid.
    # The loader keeps it and splits by it from the next page on (docs/loader.md).
    bucket: str | None = None


class BeaconLimits:
    """Per-process state of the endpoints, built from settings on first use."""

    def __init__(self, state: AppState) -> None:
        s = state.settings
        self.max_bytes = s.beacon_max_bytes
        self.catalog = ManifestCatalog.from_store(
            state.store,
            ttl=s.beacon_manifest_cache_seconds,
            refresh=s.beacon_apartments_refresh_seconds,
            min_relist=s.beacon_apartments_min_relist_seconds,
        )
        # Per-client token buckets, kept by the evidence ledger (shared with Redis): beacon
        # requests in one, and one token per page load in another of the same size.
        self.rate, self.burst = s.beacon_rate_per_second, s.beacon_burst
        if s.beacon_key is None:
            log.warning(
                "SKYLINE_BEACON_KEY is not set: beacon tokens are signed with a random key of this "
                "process (they stop verifying on restart and on any other API process)"
            )
            key = secrets.token_bytes(32)
        else:
            key = s.beacon_key.get_secret_value().encode()
        previous = [s.beacon_previous_key.get_secret_value().encode()] if s.beacon_previous_key else []
        self.signer = BeaconSigner(key, previous, ttl_seconds=s.beacon_token_ttl_seconds)
        # Developer overrides (api/overrides.py): the same keys, their own signing domain.
        self.overrides = OverrideSigner(key, previous)
        # Bucket keys (the split id of a browser): the same keys, their own signing domain.
        self.buckets = BucketKeys(key, previous)
        self.override_units = UnitCache(state.store.find_unit)
        # Rates, session caps, first observations and token budgets: shared by every API process
        # when a store is configured (adapters/evidence.py), else this process's own.
        self.session_cap = s.beacon_session_max_beacons
        self.network_tokens = s.beacon_network_tokens_per_minute
        self.evidence: EvidenceLedger = (
            RedisEvidence(s.redis_url, s.redis_timeout_seconds) if s.redis_url else MemoryEvidence()
        )
        self.trusted_proxies = parse_networks(s.trusted_proxies)

    def beacon_rate(self, client: str) -> RateCheck:
        return RateCheck("beacons", client, self.rate, self.burst)

    def token_rate(self, client: str) -> RateCheck:
        """Beacon tokens and override lookups (api/routes/overrides.py): one bucket."""
        return RateCheck("tokens", client, self.rate, self.burst)

    def client(self, request: Request) -> str:
        """The client's address: the TCP peer unless it is a trusted proxy (skyline/networks.py)."""
        peer = request.scope.get("client")
        # No proxy trusted, no header believed: not even looked up (per page load).
        forwarded = request.headers.get("x-forwarded-for") if self.trusted_proxies else None
        return client_address(peer[0] if peer else None, forwarded, self.trusted_proxies)


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
    child(REFUSED, reason).inc()
    return JSONResponse(error_body(status, code, message, field), status, headers={**CORS, **(headers or {})})


async def _body(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is longer than `limit` (not read further)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    # The ASGI messages read here rather than through request.stream(), an async generator
    # whose machinery cost more than the read itself for a body of one message.
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        if message["type"] != "http.request":
            continue
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        if not message.get("more_body", False):
            return b"".join(chunks) + chunk if chunks else chunk
        chunks.append(chunk)


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
        422: {"description": "a beacon is malformed, or its building is not in the manifest"},
        429: {"description": "too many beacon requests from this client"},
        **STORE_DOWN_RESPONSE,
    },
)
async def post_beacons(request: Request) -> Response:
    """Count unit loads reported by the loader: `{"beacons": [{apartment, building, unit,
    version, outcome, load_seconds}]}` (or one bare beacon). All or nothing: if one
    beacon is refused, none of the request is counted."""
    try:
        return await _accept_beacons(request)
    except EvidenceUnavailable as exc:
        return _refuse("unavailable", 503, STORE_DOWN, store_down(exc), headers=RETRY_SOON)


def store_down(exc: EvidenceUnavailable) -> str:
    """The 503's message; the outage logged at most every 10 s (a busy collector would
    otherwise log a line per page load)."""
    global _outage_logged_at
    now = time.monotonic()
    if now - _outage_logged_at >= 10:
        _outage_logged_at = now
        log.warning("the shared evidence store did not answer, answering 503: %s", exc)
    return "the shared evidence store did not answer; retry shortly"


async def _accept_beacons(request: Request) -> Response:
    limits = _limits(request)
    client = limits.client(request)
    rate = limits.beacon_rate(client)
    checked = await _check(request, limits)
    if isinstance(checked, _Refusal):
        # A refused request counts against the client's rate too, and a client over its
        # rate hears that first, whatever else is wrong with the request.
        wait = await limits.evidence.take(rate)
        return _rate_limited(client, wait) if wait > 0 else _refuse(*checked)
    batch, claims = checked
    sightings = [_sighting(b) for b in batch.beacons]
    got = await limits.evidence.ingest(
        rate, claims.session, claims.expires_at, limits.session_cap, network_of(client), sightings
    )
    if got.wait > 0:
        return _rate_limited(client, got.wait)
    if not got.admitted:
        return _refuse(
            "session_limit",
            429,
            "session_limit",
            f"this page's beacon session has sent its {limits.session_cap} beacons; "
            "a new page load gets a new session",
            "token",
        )
    first: list[bool] = []
    new_sessions: list[tuple[str, str, str, str]] = []
    for b, (observation, version, _) in zip(batch.beacons, got.firsts, strict=True):
        first.append(observation)
        if version and not b.override:
            new_sessions.append((b.apartment, b.building, b.unit, b.version))
    record(batch.beacons, new_sessions, first)
    return _Accepted(len(batch.beacons))


class _Refusal(NamedTuple):
    """The arguments of `_refuse`, decided before the client's rate is known."""

    reason: RefusalReason
    status: int
    code: str
    message: str
    field: str | None = None


def _rate_limited(client: str, wait: float) -> JSONResponse:
    return _refuse(
        "rate_limited",
        429,
        "rate_limited",
        f"too many beacon requests from {client}; retry after {wait:.1f} s or batch beacons",
        headers={"Retry-After": str(max(1, math.ceil(wait)))},
    )


async def _check(request: Request, limits: BeaconLimits) -> tuple[BeaconBatch, Claims] | _Refusal:
    """The batch and its token's claims, or why the request is refused (the rate aside)."""
    raw = await _body(request, limits.max_bytes)
    if raw is None:
        return _Refusal(
            "too_large",
            413,
            "beacon_too_large",
            f"the body is larger than {limits.max_bytes} bytes; send at most 20 beacons per request",
        )
    try:
        # The loader's shape, parsed and checked in one pass (pydantic-core); anything else
        # (a bare beacon, a refusal) goes the long way below, which words the refusal.
        batch = BeaconBatch.model_validate_json(raw)
    except ValidationError:
        pass
    else:
        return await _authorised(limits, batch)
    try:
        payload: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _Refusal("malformed", 400, "invalid_json", f"the body is not JSON: {exc}")
    except RecursionError:
        return _Refusal("malformed", 400, "invalid_json", "the body nests JSON too deeply; send flat beacons")
    if not isinstance(payload, dict):
        return _Refusal(
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
        return _Refusal("invalid", 422, "invalid_beacon", message, _field(tuple(problems[0]["loc"])))
    return await _authorised(limits, batch)


async def _authorised(limits: BeaconLimits, batch: BeaconBatch) -> tuple[BeaconBatch, Claims] | _Refusal:
    """The batch and its token's claims, or why its token or labels do not cover it."""
    try:
        claims = limits.signer.verify(batch.token)
    except TokenError as exc:
        return _Refusal("token", 401, "invalid_beacon_token", exc.message, "token")
    for index, beacon in enumerate(batch.beacons):
        if beacon.apartment != claims.apartment:
            return _Refusal(
                "token",
                403,
                "beacon_token_scope",
                f"the beacon token was issued for apartment {claims.apartment!r}, not {beacon.apartment!r}",
                f"beacons.{index}.apartment",
            )
        allows = claims.allows_override if beacon.override else claims.allows
        if not allows(beacon.building, beacon.unit, beacon.version):
            if not beacon.override and await _offered(limits, beacon):
                # The manifest offers it, but not to this session: the split assigned the
                # session another version (a page reporting where it was not sent).
                return _Refusal(
                    "unassigned",
                    403,
                    "beacon_not_assigned",
                    f"this session was not assigned {beacon.building!r}/{beacon.unit}@{beacon.version}: "
                    "a beacon token covers the unit the split gave the page's bucket key and the "
                    "stable unit",
                    f"beacons.{index}.version",
                )
            return _Refusal(
                "token",
                403,
                "beacon_token_scope",
                f"the beacon token does not cover {beacon.building!r}/{beacon.unit}@{beacon.version} "
                "(the units the manifest offered when it was issued); get a new token",
                f"beacons.{index}.version",
            )
    for index, beacon in enumerate(batch.beacons):
        problem = await limits.catalog.unknown(beacon)
        if problem is not None:
            field, message = problem
            return _Refusal(
                "unknown_label",
                422,
                "unknown_label",
                f"{message}; a beacon names an apartment and building of the manifest",
                f"beacons.{index}.{field}",
            )
    return batch, claims


def _sighting(b: Beacon) -> Sighting:
    """The session's members a beacon adds: its observation (version and outcome), its version
    and its building; a first observation of a load outside an override is evidence."""
    return Sighting(
        labels=(b.apartment, b.building, b.unit, b.version),
        observation=f"o|{b.building}|{b.unit}|{b.version}|{b.outcome}|{b.kind}|{b.override}",
        version=f"v|{b.building}|{b.unit}|{b.version}|{b.override}",
        building=f"b|{b.building}|{b.override}",
        counted=b.kind == "load" and not b.override,
        failed=b.outcome != "loaded",
    )


async def _offered(limits: BeaconLimits, beacon: Beacon) -> bool:
    manifest = await limits.catalog.get(beacon.apartment)
    if manifest is None:
        return False
    key = f"{beacon.unit}@{beacon.version}"
    return key in loadable_units(manifest, beacon.apartment).get(beacon.building, [])


def _token_refusal(outcome: str, status: int, code: str, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:  # fmt: skip
    child(TOKENS, outcome).inc()
    return JSONResponse(
        error_body(status, code, message, field),
        status,
        headers={**CORS, "Cache-Control": "no-store", **(headers or {})},
    )


@router.get(
    "/beacon-token",
    response_model=BeaconToken,
    responses={
        404: {"description": "no such apartment"},
        422: {"description": "apartment or revision malformed"},
        429: {"description": "too many token requests from this client"},
        **STORE_DOWN_RESPONSE,
    },
)
async def beacon_token(
    request: Request,
    apartment: str = "",
    revision: str | None = None,
    override: str | None = None,
    bucket: str | None = None,
) -> Response:
    """A signed token for one page load's beacons: bound to the apartment, the units its
    manifest lets a page load, an expiry and a random session. `revision` is the manifest
    revision the page read (the token then covers at least that revision's units).
    `override`: the page's override tokens (comma-separated, POST /overrides); each valid one
    for this apartment lets beacons labelled `override` name its unit (invalid ones are left
    out, not refused: the page works without them). `bucket`: the browser's bucket key from an
    earlier answer; the token's `units` are then the unit the split assigns that bucket per
    building plus the active (stable) unit, and without a valid key (a first visit, split
    all-stable by the loader) the active units alone, with a new key in `bucket`.
    Never cached: every answer is a new session."""
    try:
        return await _issue_token(request, apartment, revision, override, bucket)
    except EvidenceUnavailable as exc:
        return _token_refusal("unavailable", 503, STORE_DOWN, store_down(exc), headers=RETRY_SOON)


async def _issue_token(
    request: Request, apartment: str, revision: str | None, override: str | None, bucket: str | None
) -> Response:
    limits = _limits(request)
    client = limits.client(request)
    rate = limits.token_rate(client)
    refusal: tuple[str, int, str, str, str] | None = None
    manifest = None
    if not SLUG.match(apartment) or len(apartment) > 63:
        refusal = (
            "invalid",
            422,
            "invalid_apartment",
            f"{apartment[:70]!r} is not an apartment id",
            "apartment",
        )
    elif revision is not None and (not revision.isdigit() or len(revision) > 12):
        message = "revision is the manifest's version number"
        refusal = ("invalid", 422, "invalid_revision", message, "revision")
    else:
        manifest = await limits.catalog.at_least(apartment, int(revision) if revision is not None else None)
        if manifest is None or apartment not in manifest.apartments:
            refusal = ("unknown_apartment", 404, "not_found", f"no apartment {apartment!r}", "apartment")
    network = network_of(client)
    if refusal is not None:
        # Refusals count against the client's rate too, and the rate is heard first.
        wait, granted = await limits.evidence.take(rate), True
    else:
        wait, granted = await limits.evidence.token(rate, apartment, network, limits.network_tokens)
    if wait > 0:
        return _token_refusal(
            "rate_limited",
            429,
            "rate_limited",
            f"too many beacon token requests from {client}; retry after {wait:.1f} s",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    if refusal is not None:
        return _token_refusal(*refusal)
    assert manifest is not None  # no refusal: the apartment's manifest was found
    if not granted:
        return _token_refusal(
            "rate_limited",
            429,
            "network_budget",
            f"client network {network} has had its {limits.network_tokens} beacon tokens for "
            f"{apartment!r} this minute",
            headers={"Retry-After": "60"},
        )
    buildings = manifest.apartments[apartment].buildings
    for building_id, keys in loadable_units(manifest, apartment).items():
        for key in keys:
            unit = buildings[building_id].units[key]
            touch(apartment, building_id, unit.name, unit.version)
    overrides: dict[str, list[str]] = {}
    for given in (override or "").split(",")[:MAX_OVERRIDES]:
        try:
            found = limits.overrides.verify(given)
        except TokenError:
            continue
        if found.apartment == apartment:
            overrides[found.building] = [found.key]
    bucket_id = limits.buckets.verify(bucket)
    bucket_key = bucket if bucket_id is not None else limits.buckets.issue()
    units = assigned_units(manifest, apartment, bucket_id)
    token, claims = limits.signer.issue(apartment, units, overrides)
    child(TOKENS, "issued").inc()
    body = BeaconToken(
        token=token,
        apartment=apartment,
        session=claims.session,
        expires_at=claims.expires_at,
        units=units,
        overrides=overrides,
        bucket=bucket_key,
    )
    return JSONResponse(body.model_dump(), 200, headers={**CORS, "Cache-Control": "no-store"})


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


async def _beacon_token_from_query(request: Request) -> Response:
    """GET /beacon-token with its query read by hand, as FastAPI would (the last value of a
    repeated parameter wins), for the collector's fast lane (collector/fast_lane.py)."""
    query = request.query_params
    return await beacon_token(
        request,
        apartment=query.get("apartment", ""),
        revision=query.get("revision"),
        override=query.get("override"),
        bucket=query.get("bucket"),
    )


# The per-page-load routes, answered by the collector without FastAPI's layers.
FAST_ROUTES = {("POST", "/beacons"): post_beacons, ("GET", "/beacon-token"): _beacon_token_from_query}
