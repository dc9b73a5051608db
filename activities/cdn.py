"""The purge-then-verify activity (the providers are in adapters/cdn.py).

A purge is not proof: seed 000's order is upload → invalidate → verify, so
after every purge the manifest is read back through the edge and compared
with the revision just written, re-purging (bounded) until it matches.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.beat import beat
from adapters.cdn import CdnProvider
from adapters.manifest_store import head_key
from skyline.settings import Settings


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
        return self.serve(inp, beat)

    def serve(self, inp: SyncManifestInput, progress: Callable[[int], None]) -> SyncManifestResult:
        """The purge-and-verify rounds; `progress(attempt)` before each one (the heartbeat of
        the activity running them, which decides what its details say)."""
        key = inp.key or head_key(inp.apartment)
        path = self.settings.edge_path(key)
        url = self.settings.public_url(key)
        purges = 0
        served: int | None = None
        for attempt in range(self.settings.edge_verify_attempts):
            progress(attempt)
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
