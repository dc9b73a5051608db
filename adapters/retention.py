"""Collecting published files past the retention window (`skyline manifest gc`).

Reads every apartment's head, preview and revisions and lists `bundles/`, asks
skyline.retention which files every naming revision outlived by the retention
window, and deletes exactly those (not with `dry_run`). Before deleting, the
heads and previews are read again and anything they name now is kept, so a
manifest written while the plan was made cannot lose its files.
"""

from __future__ import annotations

import logging
import posixpath
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import ValidationError

from adapters.manifest_store import ManifestStore, head_key, preview_key, revision_key
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


class StorageCollector:
    def __init__(self, store: ManifestStore, public_prefix: str) -> None:
        self.store = store
        self.s3: S3Client = store.s3
        self.bucket = store.bucket
        self.public_prefix = public_prefix

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
        plan = self.plan(now, retention, apartments)
        if dry_run or not plan.collect:
            return CollectionResult(**plan.model_dump(), dry_run=dry_run, deleted=0)
        # What is served now, read again: a head written since the plan keeps its files.
        heads, previews = self._live(self.store.list_apartments())
        named: set[str] = set()
        for manifest in [*(h for h in heads.values() if h is not None), *previews]:
            named |= named_keys(manifest, self.key_of).keys
        keep = [c for c in plan.collect if c.key in named]
        if keep:
            log.warning("gc: %d files became served while planning; kept", len(keep))
        plan.collect = [c for c in plan.collect if c.key not in named]
        plan.retained += len(keep)
        plan.bytes = sum(c.size for c in plan.collect)
        keys = [c.key for c in plan.collect]
        for start in range(0, len(keys), 1000):
            self.s3.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]], "Quiet": True},
            )
        return CollectionResult(**plan.model_dump(), dry_run=False, deleted=len(keys))
