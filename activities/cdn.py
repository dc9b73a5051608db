"""CDN providers behind one interface, and the purge-then-verify activity.

A purge is not proof: seed 000's order is upload → invalidate → verify, so
after every purge the manifest is read back through the edge and compared
with the revision just written, re-purging (bounded) until it matches.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol

import httpx
from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.manifest_store import head_key
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
            if activity.in_activity():
                activity.heartbeat(status)


class SyncManifestInput(BaseModel):
    apartment: str
    revision: int
    key: str | None = Field(default=None, description="object to sync; default the manifest head")


class SyncManifestResult(BaseModel):
    served_revision: int
    purges: int
    reads: int


class CdnActivities:
    def __init__(self, settings: Settings, provider: CdnProvider, http: httpx.Client) -> None:
        self.settings = settings
        self.provider = provider
        self.http = http

    def served_revision(self, url: str) -> int | None:
        response = self.http.get(url)
        if response.status_code != 200:
            return None
        header = response.headers.get("x-amz-meta-skyline-revision")
        if header and header.isdigit():
            return int(header)
        try:
            return int(response.json()["version"])
        except (ValueError, KeyError, TypeError):
            return None

    @activity.defn
    def sync_manifest_to_edge(self, inp: SyncManifestInput) -> SyncManifestResult:
        """Purge the manifest path, then read it back until the edge serves `revision`."""
        key = inp.key or head_key(inp.apartment)
        path = f"/{self.settings.s3_bucket}/{key}"
        url = self.settings.public_url(key)
        purges = 0
        served: int | None = None
        for attempt in range(self.settings.edge_verify_attempts):
            if activity.in_activity():
                activity.heartbeat(attempt)
            self.provider.purge([path])
            purges += 1
            served = self.served_revision(url)
            # A newer revision from another rollout on this apartment also proves ours is gone.
            if served is not None and served >= inp.revision:
                return SyncManifestResult(served_revision=served, purges=purges, reads=purges)
            time.sleep(min(1.0, 0.02 * 2**attempt))
        raise ApplicationError(
            f"edge still serves revision {served} of {inp.apartment!r} after {purges} purges; "
            f"expected {inp.revision}",
            type="EdgeStale",
        )
