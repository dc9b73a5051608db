"""CDN purge over the providers' HTTP APIs, and the factory that picks one from settings.

Every provider implements CdnProvider (`purge(paths)`), takes
URL paths such as `/skyline/manifests/shop/manifest.json`, and raises on any
refusal so the activity's retry policy retries. The purge-then-verify loop in
activities/cdn.py reads the object back through the edge afterwards: a purge
the provider accepted is still not proof.

Skyline only ever purges the manifest path (bundles are immutable and
content-addressed), one explicit path per call. Wildcards are refused unless
`cdn_allow_wildcard_purges` is set: CloudFront bills invalidation paths and
Cloudflare/Fastly rate-limit purges.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

import boto3
import httpx
from temporalio import activity

from adapters.storage import edge_client
from skyline.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_cloudfront import CloudFrontClient


class CdnProvider(Protocol):
    def purge(self, paths: list[str]) -> None:
        """Drop the given URL paths (e.g. /skyline/manifests/a/manifest.json) from the edge."""


class VarnishPurger:
    """HTTP PURGE against a Varnish edge; the repo's VCL allows it from loopback only."""

    def __init__(self, base_url: str, http: httpx.Client) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http

    def purge(self, paths: list[str]) -> None:
        for path in paths:
            response = self.http.request("PURGE", f"{self.base_url}{path}")
            if response.status_code != 200:
                raise RuntimeError(f"PURGE {path} answered {response.status_code}: {response.text[:200]}")


class CloudFrontInvalidator:
    """CreateInvalidation, then poll until CloudFront reports it Completed.

    One explicit path per call and never a wildcard: invalidation paths are
    billed, and only the manifest ever changes (bundles are immutable).
    """

    def __init__(
        self,
        client: CloudFrontClient,
        distribution_id: str,
        poll_seconds: float = 1.0,
        timeout_seconds: float = 600.0,
    ) -> None:
        self.client = client
        self.distribution_id = distribution_id
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds

    def purge(self, paths: list[str]) -> None:
        created = self.client.create_invalidation(
            DistributionId=self.distribution_id,
            InvalidationBatch={
                "Paths": {"Quantity": len(paths), "Items": paths},
                "CallerReference": f"skyline-{time.time_ns()}",
            },
        )
        invalidation_id = created["Invalidation"]["Id"]
        deadline = time.monotonic() + self.timeout_seconds
        status = created["Invalidation"]["Status"]
        while status.lower() != "completed":
            if time.monotonic() > deadline:
                raise TimeoutError(f"invalidation {invalidation_id} still {status}")
            time.sleep(self.poll_seconds)
            got = self.client.get_invalidation(DistributionId=self.distribution_id, Id=invalidation_id)
            status = got["Invalidation"]["Status"]
            if activity.in_activity() and not activity.info().is_local:
                activity.heartbeat(status)


# Cloudflare accepts at most this many URLs per purge request (every plan).
CLOUDFLARE_MAX_FILES = 100


class CdnConfigError(ValueError):
    """The selected CDN provider is missing a setting; the message names the variable."""


class PurgeRefused(RuntimeError):
    """The provider's API did not accept a purge (auth, rate limit, bad request)."""


def _public_urls(edge_url: str, paths: Sequence[str]) -> list[str]:
    base = edge_url.rstrip("/")
    return [f"{base}{path if path.startswith('/') else '/' + path}" for path in paths]


def _describe(response: httpx.Response) -> str:
    return f"{response.status_code} {response.text[:300]}"


class CloudflarePurger:
    """POST /zones/{zone_id}/purge_cache {"files": [full URLs]} with a scoped API token."""

    def __init__(self, api_url: str, zone_id: str, token: str, edge_url: str, http: httpx.Client) -> None:
        self.endpoint = f"{api_url.rstrip('/')}/zones/{zone_id}/purge_cache"
        self.token = token
        self.edge_url = edge_url
        self.http = http

    def purge(self, paths: list[str]) -> None:
        urls = _public_urls(self.edge_url, paths)
        for start in range(0, len(urls), CLOUDFLARE_MAX_FILES):
            batch = urls[start : start + CLOUDFLARE_MAX_FILES]
            response = self.http.post(
                self.endpoint,
                json={"files": batch},
                headers={"Authorization": f"Bearer {self.token}"},
            )
            try:
                body = response.json()
            except ValueError:
                body = {}
            if response.status_code != 200 or not body.get("success"):
                errors = body.get("errors") if isinstance(body, dict) else None
                detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors or []) or _describe(
                    response
                )
                raise PurgeRefused(f"Cloudflare refused the purge of {batch}: {detail}")


class FastlyPurger:
    """POST /purge/{host}{path} per URL with the Fastly-Key header (optionally a soft purge)."""

    def __init__(
        self, api_url: str, token: str, edge_url: str, http: httpx.Client, soft: bool = False
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.edge_url = edge_url
        self.http = http
        self.soft = soft

    def purge(self, paths: list[str]) -> None:
        headers = {"Fastly-Key": self.token, "Accept": "application/json"}
        if self.soft:
            headers["Fastly-Soft-Purge"] = "1"
        for url in _public_urls(self.edge_url, paths):
            parts = urlsplit(url)
            cached = f"{parts.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")
            response = self.http.post(f"{self.api_url}/purge/{cached}", headers=headers)
            try:
                body = response.json()
            except ValueError:
                body = {}
            if response.status_code != 200 or body.get("status") != "ok":
                raise PurgeRefused(f"Fastly refused the purge of {url}: {_describe(response)}")


class NoWildcards:
    """Refuses wildcard paths before they reach a provider that bills or rate-limits them."""

    def __init__(self, inner: CdnProvider) -> None:
        self.inner = inner

    def purge(self, paths: list[str]) -> None:
        wild = [p for p in paths if "*" in p]
        if wild:
            raise PurgeRefused(
                f"refusing wildcard purge of {wild}: purge explicit paths, or set "
                "SKYLINE_CDN_ALLOW_WILDCARD_PURGES=true if you mean it"
            )
        self.inner.purge(paths)


def _require(value: object, variable: str, provider: str) -> None:
    if value is None or value == "":
        raise CdnConfigError(f"{variable} is required with SKYLINE_CDN_PROVIDER={provider}")


def make_cdn_provider(settings: Settings, http: httpx.Client | None = None) -> CdnProvider:
    """The CdnProvider `settings.cdn_provider` names, checked for the settings it needs."""
    client = http or edge_client()
    name = settings.cdn_provider
    provider: CdnProvider
    if name == "varnish":
        provider = VarnishPurger(settings.purge_base_url, client)
    elif name == "cloudfront":
        _require(settings.cloudfront_distribution_id, "SKYLINE_CLOUDFRONT_DISTRIBUTION_ID", name)
        assert settings.cloudfront_distribution_id is not None
        cloudfront = boto3.client(
            "cloudfront",
            endpoint_url=settings.cloudfront_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.aws_access_key_id.get_secret_value(),
            aws_secret_access_key=settings.aws_secret_access_key.get_secret_value(),
        )
        provider = CloudFrontInvalidator(cloudfront, settings.cloudfront_distribution_id)
    elif name == "cloudflare":
        _require(settings.cloudflare_zone_id, "SKYLINE_CLOUDFLARE_ZONE_ID", name)
        _require(settings.cloudflare_api_token, "SKYLINE_CLOUDFLARE_API_TOKEN", name)
        assert settings.cloudflare_zone_id is not None and settings.cloudflare_api_token is not None
        provider = CloudflarePurger(
            settings.cloudflare_api_url,
            settings.cloudflare_zone_id,
            settings.cloudflare_api_token.get_secret_value(),
            settings.edge_url,
            client,
        )
    elif name == "fastly":
        _require(settings.fastly_api_token, "SKYLINE_FASTLY_API_TOKEN", name)
        assert settings.fastly_api_token is not None
        provider = FastlyPurger(
            settings.fastly_api_url,
            settings.fastly_api_token.get_secret_value(),
            settings.edge_url,
            client,
            soft=settings.fastly_soft_purge,
        )
    else:  # pragma: no cover - Settings only admits the names above
        raise CdnConfigError(f"unknown CDN provider {name!r}")
    return provider if settings.cdn_allow_wildcard_purges else NoWildcards(provider)
