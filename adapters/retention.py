"""Collecting published files past the retention window (`skyline manifest gc`).

Reads every apartment's head, preview and revisions and lists `bundles/`, asks
skyline.retention which files every naming revision outlived by the retention
window, and deletes exactly those (not with `dry_run`). Before deleting, the
heads and previews are read again and anything they name now is kept, so a
manifest written while the plan was made cannot lose its files. Files a running
rollout has pinned (published, or found stored, and about to name) are kept too;
a deleting collection holds the collection lease from before it reads the pins
until its last delete (adapters/pins.py), and purges what it deleted from the edge.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import ValidationError

from adapters.manifest_store import ManifestStore, head_key, preview_key, revision_key
from adapters.pins import Alive, PinStore
from skyline.manifest import ApartmentManifest
from skyline.retention import (
    BUNDLES,
    CollectionPlan,
    RevisionRecord,
    history,
    key_from_url,
    named_keys,
    plan_collection,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)


class UnreadableManifest(Exception):
    """A manifest document does not validate: what it names is unknown, so nothing is collected."""


class CollectionResult(CollectionPlan):
    dry_run: bool
    deleted: int
    pinned: int = 0  # files past retention kept because a running rollout will name them
    purged: int = 0  # deleted files dropped from the edge


class StorageCollector:
    def __init__(
        self,
        store: ManifestStore,
        public_prefix: str,
        alive: Alive | None = None,
        purge: Callable[[list[str]], None] | None = None,
    ) -> None:
        """`alive(workflow_id)`: is that workflow running (None: cannot tell, so its pin holds);
        `purge(keys)`: drop storage keys from the edge."""
        self.store = store
        self.s3: S3Client = store.s3
        self.bucket = store.bucket
        self.public_prefix = public_prefix
        self.alive = alive
        self.purge = purge
        self.pins = PinStore(self.s3, self.bucket)

    def key_of(self, url: str) -> str | None:
        return key_from_url(url, self.public_prefix, self.bucket)

    def _document(self, key: str) -> ApartmentManifest | None:
        try:
            found = self.store.read_at(key)
        except (ValidationError, ValueError) as exc:
            raise UnreadableManifest(f"{key} is not a manifest Skyline can read ({str(exc)[:200]})") from exc
        return found[0] if found else None

    def _live(
        self, apartments: list[str]
    ) -> tuple[dict[str, ApartmentManifest | None], list[ApartmentManifest]]:
        heads = {a: self._document(head_key(a)) for a in apartments}
        previews = [p for p in (self._document(preview_key(a)) for a in apartments) if p is not None]
        return heads, previews

    def stored(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=BUNDLES):
            for item in page.get("Contents", []):
                out[item["Key"]] = int(item.get("Size", 0))
        return out

    def missing(self, manifest: ApartmentManifest) -> list[str]:
        """Keys the manifest names that storage no longer holds (collected, or never there)."""
        wanted = named_keys(manifest, self.key_of).keys
        held: set[str] = set()
        for directory in sorted({posixpath.dirname(k) + "/" for k in wanted}):
            for page in self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=directory
            ):
                held.update(item["Key"] for item in page.get("Contents", []))
        return sorted(wanted - held)

    def plan(self, now: datetime, retention: timedelta, apartments: set[str] | None = None) -> CollectionPlan:
        names = self.store.list_apartments()
        heads, previews = self._live(names)
        records: list[RevisionRecord] = []
        for apartment in names:
            revisions = [
                self._document(revision_key(apartment, n)) for n in self.store.list_revisions(apartment)
            ]
            found = [m for m in revisions if m is not None]
            records += history(apartment, found, heads[apartment])
        return plan_collection(records, previews, self.stored(), self.key_of, now, retention, apartments)

    def collect(
        self, now: datetime, retention: timedelta, *, dry_run: bool, apartments: set[str] | None = None
    ) -> CollectionResult:
        if dry_run:
            plan = self.plan(now, retention, apartments)
            pinned = self._drop(plan, self.pins.pinned(self.alive))
            return CollectionResult(**plan.model_dump(), dry_run=True, deleted=0, pinned=pinned)
        # Held from before the pins are read until the last delete: a publisher that pinned
        # after we read them waits for us, then sees what we deleted (adapters/pins.py).
        lease = self.pins.acquire()
        try:
            plan = self.plan(now, retention, apartments)
            # What is served now, read again: a head written since the plan keeps its files.
            heads, previews = self._live(self.store.list_apartments())
            named: set[str] = set()
            for manifest in [*(h for h in heads.values() if h is not None), *previews]:
                named |= named_keys(manifest, self.key_of).keys
            kept = self._drop(plan, named)
            if kept:
                log.warning("gc: %d files became served while planning; kept", kept)
            pinned = self._drop(plan, self.pins.pinned(self.alive, sweep=True))
            keys = [c.key for c in plan.collect]
            for start in range(0, len(keys), 1000):
                lease.check()
                self.s3.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]], "Quiet": True},
                )
        finally:
            lease.release()
        purged = 0
        if self.purge is not None and keys:
            # The edge caches bundle files for a year (immutable): without a purge it would go on
            # serving what storage no longer holds, and hide a collection that went wrong.
            self.purge(keys)
            purged = len(keys)
        return CollectionResult(
            **plan.model_dump(), dry_run=False, deleted=len(keys), pinned=pinned, purged=purged
        )

    @staticmethod
    def _drop(plan: CollectionPlan, keep: set[str]) -> int:
        """Take `keep` out of the plan (counted as retained); how many were taken out."""
        kept = [c for c in plan.collect if c.key in keep]
        if kept:
            plan.collect = [c for c in plan.collect if c.key not in keep]
            plan.retained += len(kept)
            plan.bytes = sum(c.size for c in plan.collect)
        return len(kept)
