"""Bundle uploads: a tar.gz staged in object storage for a later rollout."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from pathlib import Path

from fastapi import APIRouter, UploadFile
from pydantic import BaseModel

from adapters.bundles import (
    DEFAULT_ENTRY,
    ArchiveLimits,
    ArchiveRefused,
    BundleError,
    InvalidMfManifest,
    bundle_entry,
    bundle_root,
    extract_archive,
)
from adapters.storage import upload_key
from api.auth import Caller
from api.deps import SettingsDep, StoreDep
from api.errors import ApiError

router = APIRouter(prefix="/bundles", tags=["bundles"])


class BundleUploaded(BaseModel):
    upload_id: str
    bytes: int
    files: int


def _stage(data: bytes, settings: SettingsDep, store: StoreDep) -> BundleUploaded:
    with tempfile.TemporaryDirectory(prefix="skyline-upload-") as tmp:
        archive = Path(tmp) / "bundle.tar.gz"
        archive.write_bytes(data)
        try:
            root = extract_archive(archive, Path(tmp) / "x", ArchiveLimits.from_settings(settings))
        except BundleError as exc:
            code = exc.code if isinstance(exc, ArchiveRefused) else "invalid_bundle"
            raise ApiError(422, code, str(exc), "bundle") from exc
        files = sum(1 for p in root.rglob("*") if p.is_file() and not p.is_symlink())
        try:
            # A Module Federation 2 remote: its mf-manifest.json must name an entry it holds.
            bundle_entry(bundle_root(root, DEFAULT_ENTRY), DEFAULT_ENTRY)
        except InvalidMfManifest as exc:
            raise ApiError(422, exc.code, str(exc), "bundle") from exc
    if files == 0:
        raise ApiError(422, "invalid_bundle", "the archive holds no files", "bundle")
    upload_id = hashlib.sha256(data).hexdigest()[:32]
    store.s3.put_object(
        Bucket=settings.s3_bucket, Key=upload_key(upload_id), Body=data, ContentType="application/gzip"
    )
    return BundleUploaded(upload_id=upload_id, bytes=len(data), files=files)


@router.post("", status_code=201, response_model=BundleUploaded)
async def upload_bundle(
    bundle: UploadFile, settings: SettingsDep, store: StoreDep, who: Caller
) -> BundleUploaded:
    """Upload a bundle as .tar.gz; use the returned upload_id as `bundle.upload_id`."""
    data = await bundle.read(settings.bundle_upload_max_bytes + 1)
    if len(data) > settings.bundle_upload_max_bytes:
        raise ApiError(
            413,
            "bundle_too_large",
            f"bundle archive exceeds {settings.bundle_upload_max_bytes} bytes",
            "bundle",
        )
    return await asyncio.to_thread(_stage, data, settings, store)
