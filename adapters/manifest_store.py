"""Manifest revisions in S3: immutable revision objects plus a `manifest.json` head.

The head is the linearisation point: it is replaced only with a conditional
write (If-Match on the ETag read), and a lost race re-reads and re-applies the
change. Each revision is also stored immutably under `revisions/`, written
with If-None-Match so history can never be rewritten.

A store remembers the last head it read or wrote per apartment and the
revision objects it knows exist. A write starts from the remembered head: the
conditional write is what makes it safe (a stale head loses the race and the
change is re-applied to a fresh read, like any other lost race), and it saves
the read and the history-gap check on the common path, where this process
wrote the head last (half of a step's storage requests).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from adapters.storage import (
    IMMUTABLE,
    MANIFEST_CACHE_CONTROL,
    is_missing,
    is_precondition_failed,
)
from skyline.manifest import ApartmentManifest, Building, ManifestChange, Unit
from skyline.manifest_diff import last_known_good
from skyline.manifest_ops import (
    AnyMutation,
    CreateApartment,
    ManifestConflict,
    apply_mutation,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_WRITE_ATTEMPTS = 64

# The history-gap check runs beside the head write rather than before it: it
# almost always finds the revision stored, and it sits on the emergency
# rollback's path (boto3 clients are thread-safe).
_REPAIRS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="manifest-repair")


# Bounds on what a store remembers (apartments' heads; known revision objects).
REMEMBERED_HEADS = 4096
REMEMBERED_REVISIONS = 100_000


class WriteContention(Exception):
    """Too many concurrent writers on one apartment; the caller may retry later."""


def head_key(apartment: str) -> str:
    return f"manifests/{apartment}/manifest.json"


def preview_key(apartment: str) -> str:
    return f"manifests/{apartment}/preview.json"


def revision_key(apartment: str, revision: int) -> str:
    return f"manifests/{apartment}/revisions/{revision:010d}.json"


class ManifestStore:
    def __init__(self, s3: S3Client, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket
        self._lock = threading.Lock()
        self._heads: dict[str, tuple[ApartmentManifest, str]] = {}  # never mutated: copies are
        self._stored: set[tuple[str, int]] = set()  # revision objects never go away once stored

    def _remember(self, apartment: str, head: tuple[ApartmentManifest, str] | None) -> None:
        with self._lock:
            if head is None:
                self._heads.pop(apartment, None)
                return
            if len(self._heads) >= REMEMBERED_HEADS and apartment not in self._heads:
                self._heads.pop(next(iter(self._heads)))
            self._heads[apartment] = head

    def _known_stored(self, apartment: str, revision: int) -> None:
        with self._lock:
            if len(self._stored) >= REMEMBERED_REVISIONS:
                self._stored.clear()
            self._stored.add((apartment, revision))

    def read_at(self, key: str) -> tuple[ApartmentManifest, str] | None:
        """The manifest stored at `key` and its ETag, or None when there is none."""
        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if is_missing(exc):
                return None
            raise
        return ApartmentManifest.from_json_bytes(obj["Body"].read()), obj["ETag"]

    def read(self, apartment: str) -> tuple[ApartmentManifest, str] | None:
        """Current head and its ETag, or None when the apartment does not exist."""
        head = self.read_at(head_key(apartment))
        self._remember(apartment, head)
        return head

    def read_revision(self, apartment: str, revision: int) -> ApartmentManifest | None:
        found = self.read_at(revision_key(apartment, revision))
        return found[0] if found else None

    def read_preview(self, apartment: str) -> ApartmentManifest | None:
        found = self.read_at(preview_key(apartment))
        return found[0] if found else None

    def find_unit(
        self, apartment: str, building: str, version: str, unit: str | None = None, max_revisions: int = 500
    ) -> Unit | None:
        """A published unit version of a building, wherever a manifest recorded it.

        The head first, then the blue-green preview, then the revisions, newest first (at
        most `max_revisions` of them): a version at 0 % is in the head, a rolled-back one
        only in the revisions that served it. Its `url`, `checksum` and `files` are what
        was published (a key in `Building.units` never changes its bundle). `unit` narrows
        the search to one unit name; without it the version must belong to exactly one.
        """

        def match(manifest: ApartmentManifest | None) -> list[Unit]:
            found = manifest.apartments.get(apartment) if manifest is not None else None
            b = found.buildings.get(building) if found is not None else None
            if b is None:
                return []
            return [u for u in b.units.values() if u.version == version and unit in (None, u.name)]

        head = self.read(apartment)
        candidates = match(head[0] if head else None) or match(self.read_preview(apartment))
        if not candidates:
            for revision in list(reversed(self.list_revisions(apartment)))[:max_revisions]:
                candidates = match(self.read_revision(apartment, revision))
                if candidates:
                    break
        names = {u.name for u in candidates}
        return candidates[0] if len(names) == 1 else None

    def list_apartments(self) -> list[str]:
        found: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix="manifests/", Delimiter="/"):
            for prefix in page.get("CommonPrefixes", []):
                found.append(prefix["Prefix"].removeprefix("manifests/").rstrip("/"))
        return sorted(found)

    def list_revisions(self, apartment: str) -> list[int]:
        prefix = f"manifests/{apartment}/revisions/"
        revisions: list[int] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                revisions.append(int(item["Key"][len(prefix) :].removesuffix(".json")))
        return sorted(revisions)

    def _put(self, key: str, manifest: ApartmentManifest, cache: str, **cond: Any) -> str:
        response = self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=manifest.to_json_bytes(),
            ContentType="application/json",
            CacheControl=cache,
            Metadata={
                "skyline-revision": manifest.version,
                "skyline-change-id": manifest.change.id if manifest.change else "",
            },
            **cond,
        )
        return response["ETag"]

    def _ensure_revision(self, apartment: str, manifest: ApartmentManifest) -> None:
        """Store the revision object unless it exists (never overwritten: If-None-Match)."""
        if (apartment, manifest.revision) in self._stored:
            return
        try:
            self._put(revision_key(apartment, manifest.revision), manifest, IMMUTABLE, IfNoneMatch="*")
        except ClientError as exc:
            if not is_precondition_failed(exc):
                raise
        self._known_stored(apartment, manifest.revision)

    def _repair_revision(self, apartment: str, manifest: ApartmentManifest) -> None:
        """The head's revision object, stored if a writer died between the head and it.

        A HEAD first: it normally finds the object, and S3 answers a refused
        conditional write far more slowly than a found object. Nothing at all when
        this store stored or found it before.
        """
        if (apartment, manifest.revision) in self._stored:
            return
        try:
            self.s3.head_object(Bucket=self.bucket, Key=revision_key(apartment, manifest.revision))
            self._known_stored(apartment, manifest.revision)
            return
        except ClientError as exc:
            if not is_missing(exc):
                raise
        self._ensure_revision(apartment, manifest)

    def write_preview(
        self, apartment: str, mutation: AnyMutation, change: ManifestChange
    ) -> ApartmentManifest:
        """The head with one change applied, at a second path shells load on request.

        Not a revision: production traffic never sees it. Its `version` is the
        head revision it was made from.
        """
        current = self.read(apartment)
        if current is None:
            raise ManifestConflict(f"apartment {apartment!r} does not exist")
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        preview = apply_mutation(current[0], apartment, mutation, change, stamp)
        preview.version = current[0].version
        self._put(preview_key(apartment), preview, MANIFEST_CACHE_CONTROL)
        return preview

    def clear_preview(self, apartment: str, written: str, change: ManifestChange) -> ApartmentManifest | None:
        """No candidate any more: the preview becomes what production serves, saying so in its change.

        Only the preview this rollout wrote (change id `written`) is replaced: another
        building's blue-green may have written a newer one since. None when left alone.
        """
        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=preview_key(apartment))
        except ClientError as exc:
            if is_missing(exc):
                return None
            raise
        preview = ApartmentManifest.from_json_bytes(obj["Body"].read())
        if preview.change is not None and preview.change.id == change.id:
            return preview  # cleared already (a retried activity)
        if preview.change is None or preview.change.id != written:
            return None
        current = self.read(apartment)
        if current is None:
            return None
        cleared = current[0].model_copy(update={"change": change})
        self._put(preview_key(apartment), cleared, MANIFEST_CACHE_CONTROL)
        return cleared

    def last_known_good(self, apartment: str, before: int | None = None) -> ApartmentManifest | None:
        """Newest settled revision (no unit in rollout), at or below `before`."""
        return last_known_good(
            self.list_revisions(apartment), lambda revision: self.read_revision(apartment, revision), before
        )

    def _find_change(self, apartment: str, change_id: str, first: int, last: int) -> ApartmentManifest | None:
        for revision in range(first, last + 1):
            found = self.read_revision(apartment, revision)
            if found is not None and found.change is not None and found.change.id == change_id:
                return found
        return None

    def _applied_already(
        self,
        apartment: str,
        manifest: ApartmentManifest | None,
        change: ManifestChange,
        base_hint: int | None,
    ) -> ApartmentManifest | None:
        """The revision holding `change` when an earlier attempt of it already wrote it."""
        if manifest is None:
            return None
        if manifest.change is not None and manifest.change.id == change.id:
            self._ensure_revision(apartment, manifest)
            return manifest
        if base_hint is not None and manifest.revision > base_hint:
            return self._find_change(apartment, change.id, base_hint + 1, manifest.revision - 1)
        return None

    def apply(
        self,
        apartment: str,
        mutation: AnyMutation,
        change: ManifestChange,
        base_hint: int | None = None,
        on_base: Callable[[int], None] | None = None,
    ) -> tuple[ApartmentManifest, bool]:
        """Apply a change exactly once; returns (resulting revision, applied now).

        `base_hint` is the head revision a previous attempt of the same change
        saw before writing; with it a retry finds its own earlier write even
        when other writers have moved the head on since.
        """
        remembered = self._heads.get(apartment)
        for attempt in range(MAX_WRITE_ATTEMPTS):
            # The remembered head only on the first attempt; anything it leads to short of a
            # won conditional write (a refusal, a conflict, a lost race) is decided again on a
            # fresh read.
            current = remembered if remembered is not None else self.read(apartment)
            manifest, etag = current if current else (None, None)
            try:
                done = self._applied_already(apartment, manifest, change, base_hint)
                if done is not None:
                    return done, False
                stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
                nxt = apply_mutation(manifest, apartment, mutation, change, stamp)
            except Exception:
                if remembered is None:
                    raise
                remembered = None
                continue
            if on_base is not None and manifest is not None:
                on_base(manifest.revision)
            # Repairs the history gap a writer leaves if it dies between
            # moving the head and storing its revision.
            repair = None if manifest is None else _REPAIRS.submit(self._repair_revision, apartment, manifest)
            cond: dict[str, str] = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
            try:
                written = self._put(head_key(apartment), nxt, MANIFEST_CACHE_CONTROL, **cond)
            except ClientError as exc:
                _join(repair)
                self._remember(apartment, None)
                if not is_precondition_failed(exc):
                    raise
                if remembered is not None:
                    remembered = None  # stale: no back-off, this was not a race with a live writer
                    continue
                if isinstance(mutation, CreateApartment):
                    raise ManifestConflict(f"apartment {apartment!r} already exists") from None
                time.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))
                continue
            _join(repair)
            self._remember(apartment, (nxt, written))
            self._ensure_revision(apartment, nxt)
            return nxt, True
        raise WriteContention(
            f"gave up after {MAX_WRITE_ATTEMPTS} conflicting writes on apartment {apartment!r}"
        )


def _join(repair: Future[None] | None) -> None:
    if repair is not None:
        repair.result()


def rollout_refusal(apartment: str, building: str, store: ManifestStore) -> Building | str:
    """The building to roll out into, or the reason a rollout cannot target it."""
    current = store.read(apartment)
    if current is None:
        return f"apartment {apartment!r} does not exist; create it with POST /apartments first"
    buildings = current[0].apartment(apartment).buildings
    if building not in buildings:
        known = ", ".join(sorted(buildings)) or "none"
        return f"building {building!r} does not exist in apartment {apartment!r} (known: {known})"
    return buildings[building]
