"""Publishing a bundle to its immutable, content-addressed prefix and checking the edge."""

from __future__ import annotations

import hashlib
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from botocore.exceptions import ClientError
from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.bundles import (
    ArchiveLimits,
    BundleError,
    BundleFile,
    bundle_root,
    content_type,
    extract_archive,
    open_nofollow,
    resolve_bundle_path,
    scan_bundle,
    sri_sha384,
    tree_hash,
)
from activities.storage import IMMUTABLE, is_missing
from skyline.rollout import BundleSource
from skyline.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from activities.cdn import CdnProvider

MARKER = ".skyline-bundle.json"
CLOCK_SKEW = timedelta(minutes=5)
# Objects the edge must never serve (uploaded archives, tokens) live under this prefix.
PRIVATE_PREFIX = "private/"


def upload_key(upload_id: str) -> str:
    return f"{PRIVATE_PREFIX}uploads/{upload_id}.tar.gz"


def legacy_upload_key(upload_id: str) -> str:
    """Where uploads were kept before they moved under private/ (read for migration only)."""
    return f"uploads/{upload_id}.tar.gz"


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


class UnpublishBundleInput(BaseModel):
    prefix: str
    # Set when the rollout uploaded every file itself (nothing was there before it
    # started): only manifests written since then can reference the prefix.
    since: datetime | None = None


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
        self, settings: Settings, s3: S3Client, http: httpx.Client, cdn: CdnProvider | None = None
    ) -> None:
        self.settings = settings
        self.s3 = s3
        self.http = http
        self.cdn = cdn

    def _existing(self, prefix: str) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.settings.s3_bucket, Prefix=prefix
        ):
            for item in page.get("Contents", []):
                sizes[item["Key"]] = item["Size"]
        return sizes

    def _upload(self, key: str, f: BundleFile) -> None:
        with open_nofollow(f.path) as body:
            self.s3.put_object(
                Bucket=self.settings.s3_bucket,
                Key=key,
                Body=body,
                ContentType=content_type(f.relpath),
                CacheControl=IMMUTABLE,
                Metadata={"sha256": f.sha256},
            )

    def _publish_dir(self, root: Path, inp: PublishBundleInput) -> PublishBundleResult:
        files = scan_bundle(root, inp.entry)
        prefix = f"bundles/{inp.unit_id}/{tree_hash(files)[:32]}/"
        existing = self._existing(prefix)
        # Content-addressed keys: an object already there with the right size
        # is this very file, so a retry or a re-publish sends only what is missing.
        todo = [f for f in files if existing.get(prefix + f.relpath) != f.size]
        done = 0
        if todo:
            with ThreadPoolExecutor(max_workers=self.settings.upload_concurrency) as pool:
                futures = [pool.submit(self._upload, prefix + f.relpath, f) for f in todo]
                for future in as_completed(futures):
                    future.result()
                    done += 1
                    if activity.in_activity():
                        activity.heartbeat(done)
        entry = next(f for f in files if f.relpath == inp.entry)
        return PublishBundleResult(
            prefix=prefix,
            entry_url=self.settings.public_url(prefix + inp.entry),
            integrity=sri_sha384(_read(entry.path)),
            size=sum(f.size for f in files),
            files=len(files),
            uploaded=len(todo),
            skipped=len(files) - len(todo),
        )

    def publish(self, inp: PublishBundleInput) -> PublishBundleResult:
        if inp.source.path is not None:
            # Checked by the API too; again here, where the files are read (defence in depth).
            return self._publish_dir(resolve_bundle_path(inp.source.path, self.settings.bundle_root), inp)
        assert inp.source.upload_id is not None
        with tempfile.TemporaryDirectory(prefix="skyline-bundle-") as tmp:
            archive = Path(tmp) / "bundle.tar.gz"
            self._download_upload(inp.source.upload_id, archive)
            unpacked = Path(tmp) / "unpacked"
            unpacked.mkdir()
            extract_archive(archive, unpacked, ArchiveLimits.from_settings(self.settings))
            return self._publish_dir(bundle_root(unpacked, inp.entry), inp)

    def _download_upload(self, upload_id: str, dest: Path) -> None:
        try:
            self.s3.download_file(self.settings.s3_bucket, upload_key(upload_id), str(dest))
        except ClientError as exc:
            if not (is_missing(exc) or "404" in str(exc)):
                raise
            # Uploaded before uploads moved under private/: read it once from the old place.
            self.s3.download_file(self.settings.s3_bucket, legacy_upload_key(upload_id), str(dest))

    def _referenced(self, prefix: str, since: datetime | None) -> str | None:
        """Which manifest (head, preview or any revision) points into `prefix`, if one does.

        With `since`, only documents written after it (less a margin for clock skew) are read.
        """
        needle = prefix.encode()
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
                if needle in body:
                    return key
        return None

    def unpublish(self, inp: UnpublishBundleInput) -> UnpublishBundleResult:
        prefix = inp.prefix
        if not prefix.startswith("bundles/") or not prefix.endswith("/") or ".." in prefix.split("/"):
            raise BundleError(f"{prefix!r} is not a bundle prefix")
        # Content-addressed: an identical earlier build shares the prefix; never break it.
        referenced = self._referenced(prefix, inp.since)
        if referenced:
            return UnpublishBundleResult(deleted=0, kept_reason=f"referenced by {referenced}")
        keys = list(self._existing(prefix))
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            self.s3.delete_objects(
                Bucket=self.settings.s3_bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
        if self.cdn is not None and keys:
            # The edge fetched the entry to verify it: drop what it cached, path by path.
            self.cdn.purge([f"/{self.settings.s3_bucket}/{k}" for k in keys])
        return UnpublishBundleResult(deleted=len(keys))

    @activity.defn
    def unpublish_bundle(self, inp: UnpublishBundleInput) -> UnpublishBundleResult:
        """Delete a published bundle that never reached traffic, unless a manifest references it."""
        try:
            return self.unpublish(inp)
        except BundleError as exc:
            raise ApplicationError(str(exc), type="InvalidBundle", non_retryable=True) from exc

    @activity.defn
    def publish_bundle(self, inp: PublishBundleInput) -> PublishBundleResult:
        try:
            return self.publish(inp)
        except BundleError as exc:
            raise ApplicationError(str(exc), type="InvalidBundle", non_retryable=True) from exc

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


def _read(path: Path) -> bytes:
    with open_nofollow(path) as fh:
        return fh.read()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
