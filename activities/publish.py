"""Publishing a bundle to its immutable, content-addressed prefix and checking the edge."""

from __future__ import annotations

import hashlib
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.bundles import (
    BundleError,
    BundleFile,
    bundle_root,
    content_type,
    extract_archive,
    scan_bundle,
    sri_sha384,
    tree_hash,
)
from activities.storage import IMMUTABLE
from skyline.rollout import BundleSource
from skyline.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MARKER = ".skyline-bundle.json"


def upload_key(upload_id: str) -> str:
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


class VerifyBundleInput(BaseModel):
    entry_url: str
    integrity: str


class VerifyBundleResult(BaseModel):
    attempts: int
    bytes: int


class PublishActivities:
    def __init__(self, settings: Settings, s3: S3Client, http: httpx.Client) -> None:
        self.settings = settings
        self.s3 = s3
        self.http = http

    def _existing(self, prefix: str) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.settings.s3_bucket, Prefix=prefix
        ):
            for item in page.get("Contents", []):
                sizes[item["Key"]] = item["Size"]
        return sizes

    def _upload(self, key: str, f: BundleFile) -> None:
        with f.path.open("rb") as body:
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
            integrity=sri_sha384(entry.path.read_bytes()),
            size=sum(f.size for f in files),
            files=len(files),
            uploaded=len(todo),
            skipped=len(files) - len(todo),
        )

    def publish(self, inp: PublishBundleInput) -> PublishBundleResult:
        if inp.source.path is not None:
            return self._publish_dir(Path(inp.source.path), inp)
        assert inp.source.upload_id is not None
        with tempfile.TemporaryDirectory(prefix="skyline-bundle-") as tmp:
            archive = Path(tmp) / "bundle.tar.gz"
            self.s3.download_file(self.settings.s3_bucket, upload_key(inp.source.upload_id), str(archive))
            unpacked = Path(tmp) / "unpacked"
            unpacked.mkdir()
            extract_archive(archive, unpacked, self.settings.bundle_upload_max_bytes * 4)
            return self._publish_dir(bundle_root(unpacked, inp.entry), inp)

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


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
