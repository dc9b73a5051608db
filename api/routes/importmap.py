"""GET /apartments/{apartment}/importmap.json: a native import map for shells without the loader.

The map names each building's unit under `@<apartment>/<building>` with the
`integrity` of its modules (skyline/importmap.py). It is keyed by the user's
*buckets*, not the user: the split hashes `"<user>:<apartment>:<building>"`
to a bucket in 0..9999 per building, and for one manifest revision the map
depends only on which canaries those buckets fall in, so every user of a
variant gets byte-identical answers (`?buckets=header:1234,main:77`; a shell
computes them with `bucketOf` from the loader module or `skyline.split.bucket_of`).
`?user=<id>` computes them here, for server-rendered shells (answered
`private`: a per-user URL is not worth a shared cache's space).

Targeted canaries (criteria on region, segments, flags or attributes) depend
on more than buckets: this endpoint serves them their *stable* unit and names
them in `Skyline-Targeted`; a targeted canary reaches its users through the
loader, which knows the user's attributes. Public like /beacon-token (a page
calls it), CORS `*`, `Cache-Control: public, max-age=5` with the manifest
revision in the ETag; manifests are read through a 1 s in-process cache, for
apartments a storage listing knows.

Stylesheets: a unit with CSS (`kind: "style"` files) is mapped to a generated
entry module that links its stylesheets with SRI and resolves once they
applied (skyline/style_entries.py). The API stores each such module at the
edge under its content hash before the first map naming it is answered (as it
publishes the loader), so the browser fetches it from the edge, verified by
the map's `integrity`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from adapters.storage import IMMUTABLE, is_missing
from api.beacons import ManifestCatalog
from api.deps import AppState
from api.errors import error_body
from skyline.importmap import styled_bucket_map
from skyline.manifest import SLUG
from skyline.settings import Settings
from skyline.split import BUCKETS, bucket_of
from skyline.style_entries import StyleEntry

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

router = APIRouter(tags=["import maps"])

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": (
        "ETag, Skyline-Manifest-Revision, Skyline-Import-Map-Variant, Skyline-Targeted"
    ),
}
MAX_AGE_SECONDS = 5
_PAIR = re.compile(r"^([a-z0-9][a-z0-9-]{0,62}):(\d{1,4})$")


def _catalog(request: Request) -> ManifestCatalog:
    catalog: ManifestCatalog | None = getattr(request.app.state, "importmap_catalog", None)
    if catalog is None:
        state: AppState = request.app.state.skyline
        catalog = ManifestCatalog.from_store(state.store, ttl=1.0, refresh=30.0, min_relist=1.0)
        request.app.state.importmap_catalog = catalog
    return catalog


def store_entry(s3: S3Client, settings: Settings, entry: StyleEntry) -> None:
    """Store a generated entry module unless it is there (its key is its content hash)."""
    try:
        s3.head_object(Bucket=settings.s3_bucket, Key=entry.key)
    except ClientError as exc:
        if not is_missing(exc):
            raise
        s3.put_object(
            Bucket=settings.s3_bucket,
            Key=entry.key,
            Body=entry.body,
            ContentType="text/javascript; charset=utf-8",
            CacheControl=IMMUTABLE,
        )


async def _stored(request: Request, entries: list[StyleEntry]) -> None:
    """Every entry the map names is at the edge before the map leaves (checked once per process)."""
    done: set[str] | None = getattr(request.app.state, "importmap_entries", None)
    if done is None:
        done = request.app.state.importmap_entries = set()
    state: AppState = request.app.state.skyline
    for entry in entries:
        if entry.key not in done:
            await asyncio.to_thread(store_entry, state.store.s3, state.settings, entry)
            done.add(entry.key)


def _refuse(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse(
        error_body(status, code, message, field), status, headers={**CORS, "Cache-Control": "no-store"}
    )


def parse_buckets(text: str) -> dict[str, int] | str:
    """`header:1234,main:77` -> {"header": 1234, "main": 77}, or what is wrong with it."""
    out: dict[str, int] = {}
    for part in [p for p in text.split(",") if p][:65]:
        found = _PAIR.match(part)
        if found is None or int(found.group(2)) >= BUCKETS:
            return f"{part[:70]!r} is not <building>:<bucket 0..{BUCKETS - 1}>"
        out[found.group(1)] = int(found.group(2))
    if len(out) > 64:
        return "at most 64 buildings"
    return out


@router.get(
    "/apartments/{apartment}/importmap.json",
    responses={
        200: {"description": '{"imports": {"@<apartment>/<building>": url}, "integrity": {url: sri}}'},
        304: {"description": "If-None-Match matched"},
        404: {"description": "no such apartment"},
        422: {"description": "buckets or user malformed"},
    },
)
async def importmap(
    request: Request, apartment: str, buckets: str | None = None, user: str | None = None
) -> Response:
    """The native import map of the units a user gets: by their per-building `buckets`
    (`header:1234,main:77`, cacheable: equal for every user of a variant) or by `user` id.
    Targeted canaries are left out (stable unit, named in `Skyline-Targeted`). A unit with
    stylesheets is mapped to a generated entry module that links them with SRI first."""
    if not SLUG.match(apartment) or len(apartment) > 63:
        return _refuse(422, "invalid_apartment", f"{apartment[:70]!r} is not an apartment id", "apartment")
    if buckets is not None and user is not None:
        return _refuse(422, "invalid_query", "give buckets or user, not both", "buckets")
    if user is not None and not 0 < len(user) <= 256:
        return _refuse(422, "invalid_user", "user is 1 to 256 characters", "user")
    wanted: dict[str, int] = {}
    if buckets is not None:
        parsed = parse_buckets(buckets)
        if isinstance(parsed, str):
            return _refuse(422, "invalid_buckets", parsed, "buckets")
        wanted = parsed
    manifest = await _catalog(request).get(apartment)
    if manifest is None or apartment not in manifest.apartments:
        return _refuse(404, "not_found", f"no apartment {apartment!r}", "apartment")
    if user is not None:
        wanted = {b: bucket_of(user, apartment, b) for b in manifest.apartments[apartment].buildings}
    settings: Settings = request.app.state.skyline.settings
    found, entries = styled_bucket_map(manifest, apartment, wanted, settings.public_url)
    await _stored(request, entries)
    body = json.dumps(found.body(), separators=(",", ":"), sort_keys=True).encode()
    etag = f'"{manifest.version}-{hashlib.sha256(body).hexdigest()[:16]}"'
    headers = {
        **CORS,
        "ETag": etag,
        "Cache-Control": f"{'private' if user is not None else 'public'}, max-age={MAX_AGE_SECONDS}",
        "Skyline-Manifest-Revision": manifest.version,
        "Skyline-Import-Map-Variant": found.variant,
        "Skyline-Targeted": ",".join(found.targeted),
    }
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(body, 200, media_type="application/importmap+json", headers=headers)
