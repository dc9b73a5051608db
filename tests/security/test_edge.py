"""The public edge serves manifests, bundles and the loader, and nothing else of the bucket.

Against the session stack's real Varnish in front of the real S3 server: an
object outside the three public prefixes is readable at the origin (anonymous
GetObject is allowed bucket-wide) but a 404 at the edge; S3 sub-resources and
response overrides in the query never reach the origin; dot segments and
encoded separators cannot climb out of a prefix.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from skyline.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


Put = Callable[[str, bytes, str], None]


@pytest.fixture
def put(s3: Any, settings: Settings) -> Iterator[Put]:
    """Writes an object straight to the origin and deletes it after the test: what these tests
    write is no manifest Skyline could read, and gc (tests/cli/test_gc_command.py, same stack)
    rightly refuses to collect while an unreadable manifest names who knows what."""
    written: list[str] = []

    def write(key: str, body: bytes, content_type: str) -> None:
        written.append(key)
        s3.put_object(
            Bucket=settings.s3_bucket, Key=key, Body=body, ContentType=content_type, CacheControl="max-age=5"
        )

    yield write
    for key in written:
        s3.delete_object(Bucket=settings.s3_bucket, Key=key)


async def test_only_the_three_public_prefixes_are_served(
    edge: httpx.AsyncClient, put: Put, s3: Any, settings: Settings
) -> None:
    tag = uuid.uuid4().hex[:10]
    b = settings.s3_bucket
    secret = json.dumps([{"name": "ada", "role": "admin", "sha256": "0" * 64}]).encode()
    put(f"auth/tokens-{tag}.json", secret, "application/json")
    put(f"uploads/{tag}.tar.gz", b"archive", "application/gzip")
    public = f"manifests/edge-{tag}/probe.json"  # no head: gc reads heads, this is none
    put(public, b'{"ok": true}', "application/json")
    # The origin serves objects outside the public prefixes to signed requests only
    # (stack/s3auth.py; tests/security/test_embedded_storage.py); the edge must choose too.
    async with httpx.AsyncClient(base_url=settings.s3_endpoint_url or "", timeout=10) as origin:
        assert (await origin.get(f"/{b}/auth/tokens-{tag}.json")).status_code == 403
    assert s3.get_object(Bucket=b, Key=f"auth/tokens-{tag}.json")["Body"].read() == secret

    assert (await edge.get(f"/{b}/{public}")).json() == {"ok": True}
    for path in (
        f"/{b}/auth/tokens-{tag}.json",
        f"/{b}/uploads/{tag}.tar.gz",
        f"/{b}",
        f"/{b}/manifests/",
        f"/{b}/bundles/",
        f"/{b}/manifests/edge-{tag}/",
        f"/{b}/manifests//edge-{tag}/probe.json",
        f"/{b}/manifests/../auth/tokens-{tag}.json",
        f"/{b}/manifests/./../auth/tokens-{tag}.json",
        f"/{b}/manifests/%2e%2e/auth/tokens-{tag}.json",
        f"/{b}/manifests/..%2fauth%2ftokens-{tag}.json",
        f"/{b}/manifests/..%5cauth%5ctokens-{tag}.json",
        f"/other-bucket/manifests/edge-{tag}/probe.json",
        f"/{b}x/manifests/edge-{tag}/probe.json",
    ):
        for method in ("GET", "HEAD"):
            response = await edge.request(method, path)
            assert response.status_code == 404, (method, path, response.status_code, response.text[:200])
            assert b"ada" not in response.content and b"archive" not in response.content, path
    # The root and the bucket's root answer the edge's own notice, never a listing.
    for path in ("/", f"/{b}/"):
        response = await edge.get(path)
        assert response.status_code == 200 and response.text.startswith("Skyline edge: "), path
        assert b"auth" not in response.content and b"<?xml" not in response.content, path


@pytest.mark.parametrize(
    "query",
    [
        "list-type=2",
        "list-type=2&prefix=auth/",
        "policy",
        "acl",
        "versions",
        "uploads",
        "tagging",
        "location",
    ],
)
async def test_s3_sub_resources_never_reach_the_origin(
    edge: httpx.AsyncClient, put: Put, settings: Settings, query: str
) -> None:
    tag = uuid.uuid4().hex[:10]
    b = settings.s3_bucket
    key = f"manifests/sub-{tag}/probe.json"  # no head: gc reads heads, this is none
    put(key, b'{"manifest": 1}', "application/json")
    put(f"auth/tokens-{tag}.json", b'["secret"]', "application/json")
    # On an object: the query is dropped, the object itself is served.
    on_object = await edge.get(f"/{b}/{key}?{query}")
    assert on_object.status_code == 200 and on_object.json() == {"manifest": 1}, on_object.text[:300]
    # On the bucket or a prefix: no listing, policy or ACL, just a 404 from the edge (the
    # root and the bucket's root: the edge's own notice, what the startup banner links to).
    for path in (f"/{b}?{query}", f"/{b}/?{query}", f"/?{query}", f"/{b}/manifests/?{query}"):
        response = await edge.get(path)
        if path.startswith((f"/{b}/?", "/?")):
            assert response.status_code == 200 and response.text.startswith("Skyline edge: "), path
        else:
            assert response.status_code == 404, (path, response.text[:300])
        assert b"<?xml" not in response.content and b"secret" not in response.content, path


async def test_a_query_cannot_change_the_served_type_or_bust_the_cache(
    edge: httpx.AsyncClient, put: Put, settings: Settings
) -> None:
    tag = uuid.uuid4().hex[:10]
    path = f"/{settings.s3_bucket}/bundles/edge-{tag}/index.js"
    put(path.split("/", 2)[2], b"export const x = '<script>';\n", "text/javascript")
    first = await edge.get(path)
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/javascript")
    overridden = await edge.get(
        f"{path}?response-content-type=text/html&response-content-disposition=inline&x={tag}"
    )
    assert overridden.status_code == 200
    assert overridden.headers["content-type"].startswith("text/javascript"), overridden.headers
    # The same object, from the cache: a query string is not a new cache entry.
    assert overridden.headers.get("x-cache") == "HIT", overridden.headers


async def test_writes_and_purges_from_outside_stay_refused(
    edge: httpx.AsyncClient, settings: Settings
) -> None:
    path = f"/{settings.s3_bucket}/manifests/x/manifest.json"
    assert (await edge.put(path, content=b"x")).status_code == 405
    assert (await edge.delete(f"{path}?uploadId=1")).status_code == 405
