"""Cloudflare and Fastly purge against local servers speaking their APIs; the provider factory.

Each fake API checks what the real one checks (path, method, auth header, body
shape), answers with the documented response bodies, and, for an accepted
purge, PURGEs the URL at the real Varnish edge of the test stack, so the
purge-then-verify activity runs end to end through each provider.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from activities.cdn import CdnActivities, SyncManifestInput
from adapters.cdn import (
    CLOUDFLARE_MAX_FILES,
    CdnConfigError,
    CloudflarePurger,
    CloudFrontInvalidator,
    FastlyPurger,
    NoWildcards,
    PurgeRefused,
    VarnishPurger,
    make_cdn_provider,
)
from adapters.manifest_store import ManifestStore, head_key
from skyline.manifest import Apartment, Building, ManifestChange, RolloutConfig, Unit
from skyline.manifest_ops import CreateApartment, SetCanary
from skyline.settings import Settings
from tests.support.cloudfront import moto_distribution
from tests.support.scenario import unique

ZONE = "023e105f4ecef8ad9ca31a8372d0c353"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeApi:
    """A loopback HTTP server; `handle(seen) -> (status, body)` plays the provider."""

    handle: Callable[[Seen], tuple[int, dict[str, Any]]]
    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                api.seen.append(seen)
                status, answer = api.handle(seen)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PURGE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def purge_at_edge(url: str) -> None:
    response = httpx.request("PURGE", url, timeout=10)
    assert response.status_code == 200, response.text


def cloudflare(token: str, purge: Callable[[str], None] = purge_at_edge) -> Callable[[Seen], Any]:
    """POST /client/v4/zones/{zone}/purge_cache, as documented for "Purge Cached Content by URL"."""

    def error(status: int, code: int, message: str) -> tuple[int, dict[str, Any]]:
        return status, {"success": False, "errors": [{"code": code, "message": message}], "messages": []}

    def handle(seen: Seen) -> tuple[int, dict[str, Any]]:
        if seen.method != "POST" or seen.path != f"/client/v4/zones/{ZONE}/purge_cache":
            return error(
                404, 7003, f"Could not route to {seen.path}, perhaps your object identifier is invalid?"
            )
        if seen.headers.get("authorization") != f"Bearer {token}":
            return error(403, 10000, "Authentication error")
        files = seen.body.get("files") if isinstance(seen.body, dict) else None
        if (
            not seen.headers.get("content-type", "").startswith("application/json")
            or not isinstance(files, list)
            or not files
            or not all(isinstance(f, str) and f.startswith(("http://", "https://")) for f in files)
        ):
            return error(400, 1012, 'Request must contain one of "purge_everything", "files", "tags"')
        if len(files) > CLOUDFLARE_MAX_FILES:
            return error(400, 1014, f"Only {CLOUDFLARE_MAX_FILES} files may be purged per request")
        for url in files:
            purge(url)
        return 200, {"success": True, "errors": [], "messages": [], "result": {"id": uuid.uuid4().hex}}

    return handle


def fastly(token: str, edge_host: str, purge: Callable[[str], None] = purge_at_edge) -> Callable[[Seen], Any]:
    """POST /purge/{cached_url} with Fastly-Key, as documented for "Purge a URL"."""

    def handle(seen: Seen) -> tuple[int, dict[str, Any]]:
        if seen.method != "POST" or not seen.path.startswith("/purge/"):
            return 404, {"msg": "Record not found", "detail": "Cannot find route"}
        if seen.headers.get("fastly-key") != token:
            return 401, {"msg": "Provided credentials are missing or invalid"}
        cached = unquote(seen.path.removeprefix("/purge/"))
        if not cached.startswith(edge_host + "/"):
            return 404, {"msg": "Record not found", "detail": f"no service caches {cached}"}
        purge(f"http://{cached}")
        return 200, {"status": "ok", "id": f"108-{uuid.uuid4().int % 10**10}-974124"}

    return handle


@pytest.fixture()
def fake() -> Iterator[Callable[[Callable[[Seen], Any]], FakeApi]]:
    started: list[FakeApi] = []

    def start(handle: Callable[[Seen], Any]) -> FakeApi:
        api = FakeApi(handle).start()
        started.append(api)
        return api

    yield start
    for api in started:
        api.close()


def stale_manifest_at_edge(settings: Settings, s3: Any) -> str:
    """An apartment whose revision 2 is in S3 while the edge still caches revision 1."""
    store = ManifestStore(s3, settings.s3_bucket)
    apartment = unique("cdn")
    apt = Apartment(name="A", buildings={"x": Building(name="x", category="main")})
    store.apply(apartment, CreateApartment(apartment=apt), ManifestChange(id="c1", actor="t", reason="r"))
    url = settings.public_url(head_key(apartment))
    assert httpx.get(url, timeout=10).json()["version"] == "1"
    unit = Unit(id="x@1.0.0", name="x", version="1.0.0", url="u", checksum="c", size=1)
    store.apply(
        apartment,
        SetCanary(building="x", unit=unit, rollout=RolloutConfig(percentage=5)),
        ManifestChange(id="c2", actor="t", reason="r"),
    )
    assert httpx.get(url, timeout=10).json()["version"] == "1"  # still cached
    return apartment


def manifest_path(settings: Settings, apartment: str) -> str:
    return f"/{settings.s3_bucket}/{head_key(apartment)}"


def test_cloudflare_purge_then_verify_through_the_api(
    settings: Settings, s3: Any, fake: Callable[[Callable[[Seen], Any]], FakeApi]
) -> None:
    token = f"cf-{uuid.uuid4().hex}"
    api = fake(cloudflare(token))
    conf = settings.model_copy(
        update={
            "cdn_provider": "cloudflare",
            "cloudflare_api_url": f"{api.url}/client/v4",
            "cloudflare_zone_id": ZONE,
            "cloudflare_api_token": SecretStr(token),
        }
    )
    apartment = stale_manifest_at_edge(settings, s3)
    with httpx.Client(timeout=10) as http:
        provider = make_cdn_provider(conf, http)
        assert isinstance(provider, NoWildcards) and isinstance(provider.inner, CloudflarePurger)
        result = CdnActivities(conf, provider, http).sync_manifest_to_edge(
            SyncManifestInput(apartment=apartment, revision=2)
        )
    assert result.served_revision == 2
    purges = [s for s in api.seen if s.method == "POST"]
    assert len(purges) == result.purges >= 1
    # one explicit URL per purge: the manifest head, as browsers fetch it
    assert all(p.body == {"files": [settings.public_url(head_key(apartment))]} for p in purges)


def test_cloudflare_refusals_raise_with_the_api_message(
    fake: Callable[[Callable[[Seen], Any]], FakeApi],
) -> None:
    api = fake(cloudflare("right-token", purge=lambda url: None))
    with httpx.Client(timeout=10) as http:
        wrong = CloudflarePurger(f"{api.url}/client/v4", ZONE, "wrong-token", "https://cdn.example", http)
        with pytest.raises(PurgeRefused, match="10000: Authentication error"):
            wrong.purge(["/skyline/manifests/a/manifest.json"])
        bad_zone = CloudflarePurger(
            f"{api.url}/client/v4", "nope", "right-token", "https://cdn.example", http
        )
        with pytest.raises(PurgeRefused, match="7003"):
            bad_zone.purge(["/skyline/manifests/a/manifest.json"])
        # more paths than one request may carry are split into batches the API accepts
        ok = CloudflarePurger(f"{api.url}/client/v4", ZONE, "right-token", "https://cdn.example/", http)
        ok.purge([f"/skyline/manifests/a{i}/manifest.json" for i in range(CLOUDFLARE_MAX_FILES + 1)])
    accepted = [
        s for s in api.seen if s.headers.get("authorization") == "Bearer right-token" and "nope" not in s.path
    ]
    assert [len(s.body["files"]) for s in accepted] == [CLOUDFLARE_MAX_FILES, 1]
    assert accepted[0].body["files"][0] == "https://cdn.example/skyline/manifests/a0/manifest.json"


def test_fastly_purge_then_verify_through_the_api(
    settings: Settings, s3: Any, fake: Callable[[Callable[[Seen], Any]], FakeApi]
) -> None:
    token = f"fastly-{uuid.uuid4().hex}"
    edge_host = urlsplit(settings.edge_url).netloc
    api = fake(fastly(token, edge_host))
    conf = settings.model_copy(
        update={
            "cdn_provider": "fastly",
            "fastly_api_url": api.url,
            "fastly_api_token": SecretStr(token),
        }
    )
    apartment = stale_manifest_at_edge(settings, s3)
    with httpx.Client(timeout=10) as http:
        provider = make_cdn_provider(conf, http)
        assert isinstance(provider, NoWildcards) and isinstance(provider.inner, FastlyPurger)
        result = CdnActivities(conf, provider, http).sync_manifest_to_edge(
            SyncManifestInput(apartment=apartment, revision=2)
        )
    assert result.served_revision == 2
    assert len(api.seen) == result.purges >= 1
    for seen in api.seen:
        assert seen.method == "POST"
        assert seen.path == f"/purge/{edge_host}{manifest_path(settings, apartment)}"
        assert seen.headers["fastly-key"] == token
        assert "fastly-soft-purge" not in seen.headers  # hard purge unless asked


def test_fastly_soft_purge_and_refusals(fake: Callable[[Callable[[Seen], Any]], FakeApi]) -> None:
    api = fake(fastly("right", "cdn.example", purge=lambda url: None))
    with httpx.Client(timeout=10) as http:
        FastlyPurger(api.url, "right", "https://cdn.example", http, soft=True).purge(["/skyline/m.json"])
        assert api.seen[-1].headers["fastly-soft-purge"] == "1"
        assert api.seen[-1].path == "/purge/cdn.example/skyline/m.json"
        with pytest.raises(PurgeRefused, match="401.*credentials"):
            FastlyPurger(api.url, "wrong", "https://cdn.example", http).purge(["/skyline/m.json"])


def test_wildcards_are_refused_unless_allowed(settings: Settings) -> None:
    with httpx.Client(timeout=10) as http:
        guarded = make_cdn_provider(settings, http)
        with pytest.raises(PurgeRefused, match="SKYLINE_CDN_ALLOW_WILDCARD_PURGES"):
            guarded.purge(["/skyline/manifests/*"])
        allowed = make_cdn_provider(settings.model_copy(update={"cdn_allow_wildcard_purges": True}), http)
    assert isinstance(allowed, VarnishPurger)


def test_cloudfront_from_the_factory_invalidates_against_moto(settings: Settings) -> None:
    client, dist = moto_distribution(settings, "factory")
    conf = settings.model_copy(
        update={
            "cdn_provider": "cloudfront",
            "cloudfront_distribution_id": dist,
            "cloudfront_endpoint_url": settings.s3_endpoint_url,
        }
    )
    provider = make_cdn_provider(conf)
    assert isinstance(provider, NoWildcards) and isinstance(provider.inner, CloudFrontInvalidator)
    provider.inner.poll_seconds = 0.05
    provider.purge(["/skyline/manifests/a/manifest.json"])
    with pytest.raises(PurgeRefused):
        provider.purge(["/skyline/*"])  # billed per path: never a wildcard by default
    listed = client.list_invalidations(DistributionId=dist)["InvalidationList"]
    assert listed["Quantity"] == 1


@pytest.mark.parametrize(
    ("provider", "missing"),
    [
        ("cloudfront", "SKYLINE_CLOUDFRONT_DISTRIBUTION_ID"),
        ("cloudflare", "SKYLINE_CLOUDFLARE_ZONE_ID"),
        ("fastly", "SKYLINE_FASTLY_API_TOKEN"),
    ],
)
def test_missing_provider_settings_name_the_variable(provider: str, missing: str) -> None:
    conf = Settings(cdn_provider=provider)
    with pytest.raises(CdnConfigError, match=missing):
        make_cdn_provider(conf)
