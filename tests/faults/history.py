"""What a manifest history must look like after any fault: whole, gapless, each change once."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from adapters.manifest_store import head_key, revision_key
from skyline.manifest import ApartmentManifest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def read_history(s3: S3Client, bucket: str, apartment: str) -> list[ApartmentManifest]:
    """Every stored revision, oldest first, each parsed in full (a torn write fails here)."""
    prefix = f"manifests/{apartment}/revisions/"
    keys = sorted(
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    )
    return [
        ApartmentManifest.from_json_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        for key in keys
    ]


def assert_history_intact(s3: S3Client, bucket: str, apartment: str) -> list[ApartmentManifest]:
    history = read_history(s3, bucket, apartment)
    numbers = [m.revision for m in history]
    assert numbers == list(range(1, len(history) + 1)), f"{apartment}: revisions not gapless: {numbers}"
    for m in history:
        key = revision_key(apartment, m.revision)
        assert m.change is not None, f"{key} has no change record"
        if m.revision > 1:
            assert m.change.parent == str(m.revision - 1), f"{key}: parent {m.change.parent}"
    ids = Counter(m.change.id for m in history if m.change is not None)
    repeated = {i: n for i, n in ids.items() if n > 1}
    assert not repeated, f"{apartment}: changes applied more than once: {repeated}"
    head = ApartmentManifest.from_json_bytes(
        s3.get_object(Bucket=bucket, Key=head_key(apartment))["Body"].read()
    )
    assert head == history[-1], f"{apartment}: head is not the newest revision ({head.version})"
    return history


def changes_of(history: list[ApartmentManifest], workflow_id: str) -> list[str]:
    """The change ids a rollout wrote, in revision order (`<workflow id>/<run id>/<n>`)."""
    return [
        m.change.id for m in history if m.change is not None and m.change.id.startswith(workflow_id + "/")
    ]
