"""Publishing a bundle to its immutable, content-addressed prefix and checking the edge."""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx
from botocore.exceptions import ClientError
from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from adapters.bundles import (
    ArchiveLimits,
    BundleError,
    bundle_entry,
    bundle_root,
    content_type,
    extract_archive,
    resolve_bundle_path,
    scan_bundle,
    sri_sha384,
    tree_hash,
)
from adapters.layout import PlannedFile, SharedKeyConflict, plan_shared
from adapters.pins import LEASE, Alive, CollectionRunning, LeaseWaitTimeout, PinStore
from adapters.storage import IMMUTABLE, is_missing, is_precondition_failed, legacy_upload_key, upload_key
from skyline.federation import MF_METADATA
from skyline.frameworks import detect_framework
from skyline.manifest import Federation, Framework
from skyline.rollout import BundleSource
from skyline.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from adapters.cdn import CdnProvider

MARKER = ".skyline-bundle.json"
CLOCK_SKEW = timedelta(minutes=5)


class PublishBundleInput(BaseModel):
    unit_id: str
    version: str
    entry: str
    source: BundleSource


class PublishBundleResult(BaseModel):
    prefix: str
    entry_url: str
    integrity: str
    size: int
    files: int
    uploaded: int
    skipped: int
    # "shared": one namespace per unit, unchanged files keep their URL across versions;
    # "versioned": the whole bundle under its own content-addressed prefix (see docs/bundles.md).
    layout: Literal["shared", "versioned"] = "versioned"
    uploaded_bytes: int = 0
    # relpath in the bundle -> storage key, and -> sha384 SRI of the published bytes
    keys: dict[str, str] = Field(default_factory=dict)
    file_integrity: dict[str, str] = Field(default_factory=dict)
    # what this publish sent (the only keys it may take back) and the entry's key
    uploaded_keys: list[str] = Field(default_factory=list)
    entry_key: str | None = None
    # The entry published when it is not the input's: a Module Federation 2 remote's
    # container entry (its mf-manifest.json), with the container's name, type and exposes.
    entry: str | None = None
    federation: Federation | None = None
    # What the bundle says it is built with (skyline/frameworks.py); None from older workers.
    framework: Framework | None = None


class UnpublishBundleInput(BaseModel):
    prefix: str
    # Set when the rollout uploaded every file itself (nothing was there before it
    # started): only manifests written since then can reference the prefix.
    since: datetime | None = None
    # Shared layout (one namespace per unit): delete only these keys, the ones this
    # rollout uploaded, and only if no manifest references `entry_key` or any of them.
    keys: list[str] | None = None
    entry_key: str | None = None


class UnpublishBundleResult(BaseModel):
    deleted: int
    kept_reason: str | None = None


class VerifyBundleInput(BaseModel):
    entry_url: str
    integrity: str


class VerifyBundleResult(BaseModel):
    attempts: int
    bytes: int


class PublishActivities:
    def __init__(
        self,
        settings: Settings,
        s3: S3Client,
        http: httpx.Client,
        cdn: CdnProvider | None = None,
        alive: Alive | None = None,
    ) -> None:
        """`alive(workflow_id)`: whether a pin's workflow still runs (None: every pin counts)."""
        self.alive = alive
        self.settings = settings
        self.s3 = s3
        self.http = http
        self.cdn = cdn

    def _existing(self, prefix: str) -> dict[str, tuple[int, str]]:
        """key -> (size, ETag without quotes) of every object under `prefix`."""
        found: dict[str, tuple[int, str]] = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.settings.s3_bucket, Prefix=prefix
        ):
            for item in page.get("Contents", []):
                found[item["Key"]] = (item["Size"], item.get("ETag", "").strip('"'))
        return found

    def _upload(self, item: PlannedFile, exclusive: bool) -> None:
        """PUT one file; `exclusive`: never overwrite (a shared key another version may serve).

        A content-addressed key is written over even then: its name promises these bytes to
        every version that names it, so they can only mend what is there."""
        extra: dict[str, Any] = {"IfNoneMatch": "*"} if exclusive and not item.content_addressed else {}
        try:
            self.s3.put_object(
                Bucket=self.settings.s3_bucket,
                Key=item.key,
                Body=item.read(),
                ContentType=content_type(item.relpath),
                CacheControl=IMMUTABLE,
                Metadata={"sha256": item.sha256},
                **extra,
            )
        except ClientError as exc:
            if not (exclusive and is_precondition_failed(exc)):
                raise
            # someone published the same key first: fine if it holds these very bytes
            head = self.s3.head_object(Bucket=self.settings.s3_bucket, Key=item.key)
            if head.get("ETag", "").strip('"') != item.md5:
                raise SharedKeyConflict(item.key) from exc

    def _send(self, todo: list[PlannedFile], exclusive: bool) -> None:
        done = 0
        if not todo:
            return
        with ThreadPoolExecutor(max_workers=self.settings.upload_concurrency) as pool:
            futures = [pool.submit(self._upload, item, exclusive) for item in todo]
            for future in as_completed(futures):
                future.result()
                done += 1
                if activity.in_activity():
                    activity.heartbeat(done)

    def _purge_replaced(self, sent: list[PlannedFile], existing: dict[str, tuple[int, str]]) -> None:
        """Content-derived keys that held other bytes were just written over. An edge that
        cached those bytes (immutable, for a year) would go on serving them: purge them.
        (If this purge fails, the retry finds storage mended and purges nothing; the edge
        check then fails the rollout rather than let browsers have the cached bytes.)"""
        self._purge([item.key for item in sent if item.content_addressed and item.key in existing])

    def _purge(self, keys: list[str]) -> None:
        """Drop `keys` from the edge, path by path (nothing to do without a CDN or keys)."""
        if self.cdn is not None and keys:
            self.cdn.purge([self.settings.edge_path(k) for k in keys])

    def _pin_and_list(
        self, owner: tuple[str, str] | None, plan: list[PlannedFile], unit_prefix: str
    ) -> dict[str, tuple[int, str]]:
        """Pin every key the plan will name, wait out any collection that may not have seen the
        pin, then list what is stored: a file listed now stays until the run ends
        (adapters/pins.py has the argument). Without an owner (not in a workflow) nothing is pinned."""
        if owner is None:
            return self._existing(unit_prefix)
        pins = PinStore(self.s3, self.settings.s3_bucket)
        pins.pin(owner[0], owner[1], [item.key for item in plan])
        tick = (lambda: activity.heartbeat("waiting for a collection")) if activity.in_activity() else None
        pins.wait_for_no_lease(LEASE * 2, tick or (lambda: None))
        return self._existing(unit_prefix)

    def _publish_dir(
        self, root: Path, inp: PublishBundleInput, owner: tuple[str, str] | None = None
    ) -> PublishBundleResult:
        # A Module Federation 2 remote (mf-manifest.json at the root) publishes its container
        # entry; renamed in its directory like any entry, its chunks still resolve from its URL.
        entry, remote = bundle_entry(root, inp.entry)
        files = scan_bundle(root, entry)
        unit_prefix = f"bundles/{inp.unit_id}/"
        existing = self._existing(unit_prefix)
        federation = (
            None
            if remote is None
            else Federation(
                name=remote.name,
                type=remote.type,
                global_name=remote.global_name,
                exposes=remote.exposes,
                shared=remote.shared,
            )
        )
        extra: dict[str, Any] = {"entry": entry, "federation": federation} if remote is not None else {}
        extra["framework"] = bundle_framework(root, entry)
        # A remote's build metadata changes with every build under a fixed name: tagged by content.
        tag_also = MF_METADATA if remote is not None else ()
        plan = plan_shared(files, entry, unit_prefix, existing, tag_also)
        if plan is not None:
            existing = self._pin_and_list(owner, plan, unit_prefix)
            todo = [item for item in plan if not item.stored(existing)]
            try:
                self._send(todo, exclusive=True)
                self._purge_replaced(todo, existing)
                return self._result(plan, todo, unit_prefix, "shared", entry).model_copy(update=extra)
            except SharedKeyConflict:
                pass  # another version took a name first with other bytes: publish apart
        prefix = f"{unit_prefix}{tree_hash(files)[:32]}/"
        plan = [
            PlannedFile(f.relpath, prefix + f.relpath, f.path, f.sha256, content_addressed=True)
            for f in files
        ]
        existing = self._pin_and_list(owner, plan, unit_prefix)
        # Content-addressed prefix: a retry or a re-publish sends only what is missing or
        # holds other bytes.
        todo = [item for item in plan if not item.stored(existing)]
        self._send(todo, exclusive=False)
        self._purge_replaced(todo, existing)
        return self._result(plan, todo, prefix, "versioned", entry).model_copy(update=extra)

    def _result(
        self,
        plan: list[PlannedFile],
        todo: list[PlannedFile],
        prefix: str,
        layout: Literal["shared", "versioned"],
        entry: str,
    ) -> PublishBundleResult:
        entry_file = next(item for item in plan if item.relpath == entry)
        return PublishBundleResult(
            prefix=prefix,
            entry_url=self.settings.public_url(entry_file.key),
            integrity=entry_file.integrity,
            size=sum(item.size for item in plan),
            files=len(plan),
            uploaded_keys=[item.key for item in todo],
            entry_key=entry_file.key,
            uploaded=len(todo),
            skipped=len(plan) - len(todo),
            layout=layout,
            uploaded_bytes=sum(item.size for item in todo),
            keys={item.relpath: item.key for item in plan},
            file_integrity={item.relpath: item.integrity for item in plan},
        )

    def publish(self, inp: PublishBundleInput, owner: tuple[str, str] | None = None) -> PublishBundleResult:
        """`owner` (workflow id, run id): the run whose pin protects the files until it ends."""
        if inp.source.path is not None:
            # Checked by the API too; again here, where the files are read (defence in depth).
            root = resolve_bundle_path(inp.source.path, self.settings.bundle_root)
            return self._publish_dir(root, inp, owner)
        assert inp.source.upload_id is not None
        with tempfile.TemporaryDirectory(prefix="skyline-bundle-") as tmp:
            archive = Path(tmp) / "bundle.tar.gz"
            self._download_upload(inp.source.upload_id, archive)
            unpacked = Path(tmp) / "unpacked"
            unpacked.mkdir()
            extract_archive(archive, unpacked, ArchiveLimits.from_settings(self.settings))
            return self._publish_dir(bundle_root(unpacked, inp.entry), inp, owner)

    def _download_upload(self, upload_id: str, dest: Path) -> None:
        try:
            self.s3.download_file(self.settings.s3_bucket, upload_key(upload_id), str(dest))
        except ClientError as exc:
            if not (is_missing(exc) or "404" in str(exc)):
                raise
            # Uploaded before uploads moved under private/: read it once from the old place.
            self.s3.download_file(self.settings.s3_bucket, legacy_upload_key(upload_id), str(dest))

    def _referenced(self, prefix: str | list[str], since: datetime | None) -> str | None:
        """Which manifest (head, preview or any revision) points into `prefix` (or names any
        of several keys), if one does.

        With `since`, only documents written after it (less a margin for clock skew) are read.
        """
        needles = [p.encode() for p in ([prefix] if isinstance(prefix, str) else prefix)]
        after = since - CLOCK_SKEW if since is not None else None
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.settings.s3_bucket, Prefix="manifests/"
        ):
            for item in page.get("Contents", []):
                key = item["Key"]
                if not key.endswith(".json") or (after is not None and item["LastModified"] < after):
                    continue
                try:
                    body = self.s3.get_object(Bucket=self.settings.s3_bucket, Key=key)["Body"].read()
                except ClientError as exc:
                    if is_missing(exc):
                        continue
                    raise
                if any(needle in body for needle in needles):
                    return key
        return None

    def unpublish(self, inp: UnpublishBundleInput, own_workflow: str | None = None) -> UnpublishBundleResult:
        """Delete like gc does: under the collection lease, keeping what another run has pinned."""
        prefix = inp.prefix
        if not prefix.startswith("bundles/") or not prefix.endswith("/") or ".." in prefix.split("/"):
            raise BundleError(f"{prefix!r} is not a bundle prefix")
        pins = PinStore(self.s3, self.settings.s3_bucket)
        lease = pins.acquire()
        try:
            return self._unpublish(inp, pins.pinned(self.alive, exclude_workflow=own_workflow), lease.check)
        finally:
            lease.release()

    def _unpublish(
        self, inp: UnpublishBundleInput, pinned: set[str], check: Callable[[], None]
    ) -> UnpublishBundleResult:
        prefix = inp.prefix
        if inp.keys is not None:
            # Shared namespace: other versions' files live beside these; take back only ours.
            if any(not k.startswith(prefix) or ".." in k.split("/") for k in inp.keys):
                raise BundleError("keys to unpublish must lie under the bundle prefix")
            # Any of them, not just the entry: a rollout of the same unit elsewhere may have
            # skipped uploading a chunk this one uploaded first, and been served with it since
            # (a file a served revision names is retained: docs/bundles.md#skew-protection).
            referenced = self._referenced([inp.entry_key or prefix, *inp.keys], inp.since)
            if referenced:
                return UnpublishBundleResult(deleted=0, kept_reason=f"referenced by {referenced}")
            keys = list(inp.keys)
        else:
            # Content-addressed: an identical earlier build shares the prefix; never break it.
            referenced = self._referenced(prefix, inp.since)
            if referenced:
                return UnpublishBundleResult(deleted=0, kept_reason=f"referenced by {referenced}")
            keys = list(self._existing(prefix))
        # Another running rollout found these very files stored (dedup) and will name them.
        kept = [k for k in keys if k in pinned]
        if kept:
            return UnpublishBundleResult(deleted=0, kept_reason=f"pinned by a running rollout ({kept[0]})")
        for start in range(0, len(keys), 1000):
            check()
            batch = keys[start : start + 1000]
            self.s3.delete_objects(
                Bucket=self.settings.s3_bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
        self._purge(keys)  # the edge fetched the entry to verify it: drop what it cached
        return UnpublishBundleResult(deleted=len(keys))

    @activity.defn
    def unpublish_bundle(self, inp: UnpublishBundleInput) -> UnpublishBundleResult:
        """Delete a published bundle that never reached traffic, unless a manifest references it."""
        try:
            return self.unpublish(inp, activity.info().workflow_id if activity.in_activity() else None)
        except CollectionRunning as exc:
            raise ApplicationError(f"{exc}; unpublish retried", type="CollectionRunning") from exc
        except BundleError as exc:
            raise ApplicationError(str(exc), type="InvalidBundle", non_retryable=True) from exc

    @activity.defn
    def publish_bundle(self, inp: PublishBundleInput) -> PublishBundleResult:
        info = activity.info() if activity.in_activity() else None
        owner = (info.workflow_id, info.workflow_run_id or "") if info and info.workflow_id else None
        try:
            return self.publish(inp, owner)
        except BundleError as exc:
            raise ApplicationError(str(exc), type="InvalidBundle", non_retryable=True) from exc
        except LeaseWaitTimeout as exc:
            raise ApplicationError(f"{exc}; publish retried", type="CollectionRunning") from exc

    @activity.defn
    def verify_bundle_at_edge(self, inp: VerifyBundleInput) -> VerifyBundleResult:
        """Fetch the entry as a browser would and check it against the SRI hash."""
        status = 0
        for attempt in range(1, 6):
            response = self.http.get(inp.entry_url)
            status = response.status_code
            if status == 200:
                got = sri_sha384(response.content)
                if got != inp.integrity:
                    raise ApplicationError(
                        f"the edge serves {inp.entry_url} with checksum {got}, expected "
                        f"{inp.integrity}; storage or the edge cache holds other bytes",
                        type="ChecksumMismatch",
                        non_retryable=True,
                    )
                return VerifyBundleResult(attempts=attempt, bytes=len(response.content))
            time.sleep(0.1 * attempt)
        raise ApplicationError(f"the edge answered {status} for {inp.entry_url}", type="EdgeUnavailable")


# Enough of an entry to see its imports, which bundlers keep at the top.
FRAMEWORK_SNIFF_BYTES = 1 << 20


def _head(path: Path) -> str | None:
    if not path.is_file():
        return None
    with path.open("rb") as handle:
        return handle.read(FRAMEWORK_SNIFF_BYTES).decode("utf-8", errors="replace")


def bundle_framework(root: Path, entry: str) -> Framework:
    """The framework the bundle's package.json or its entry's imports name (else unknown)."""
    return detect_framework(_head(root / "package.json"), _head(root / entry))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
