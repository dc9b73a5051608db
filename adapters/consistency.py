"""Do object storage and Temporal agree? Rollouts whose apartment has no manifest.

Temporal keeps rollout histories in its own database; manifests, revisions,
bundles and tokens live in object storage. If storage was wiped (by hand, or a
new bucket) while Temporal kept its histories, the rollouts of the lost
apartments can only fail: say so instead, at start-up and in their status.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from adapters.manifest_store import head_key
from adapters.search_attributes import APARTMENT
from adapters.storage import is_missing

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from temporalio.client import Client

ROLLOUT_PREFIX = "rollout."


def apartment_exists(s3: S3Client, bucket: str, apartment: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=head_key(apartment))
    except ClientError as exc:
        if is_missing(exc) or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return False
        raise
    return True


def storage_warning(apartment: str) -> str:
    return (
        f"storage and Temporal disagree: Temporal has this rollout but object storage has no "
        f"manifest for apartment {apartment!r} (storage wiped or replaced?); it cannot finish"
    )


async def rollouts_without_apartment(
    temporal: Client, s3: S3Client, bucket: str, limit: int = 2000
) -> dict[str, list[str]]:
    """apartment -> ids of its rollouts known to Temporal, for every apartment storage lacks."""
    by_apartment: dict[str, list[str]] = {}
    async for execution in temporal.list_workflows("WorkflowType = 'RolloutWorkflow'", limit=limit):
        rollout_id = execution.id
        if not rollout_id.startswith(ROLLOUT_PREFIX):
            continue
        apartment = execution.typed_search_attributes.get(APARTMENT) or _apartment_of(rollout_id)
        by_apartment.setdefault(apartment, []).append(rollout_id)
    missing: dict[str, list[str]] = {}
    for apartment, ids in sorted(by_apartment.items()):
        if not await asyncio.to_thread(apartment_exists, s3, bucket, apartment):
            missing[apartment] = sorted(set(ids))
    return missing


def _apartment_of(rollout_id: str) -> str:
    """rollout.<apartment>.<building>, for a rollout without the search attribute."""
    return rollout_id.removeprefix(ROLLOUT_PREFIX).rsplit(".", 1)[0]
