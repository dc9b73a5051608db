"""Clients for the S3 API and the edge, built once per process from settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
import httpx
from botocore.config import Config
from botocore.exceptions import ClientError

from skyline.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

IMMUTABLE = "public, max-age=31536000, immutable"
# Browsers re-check the manifest within seconds even if a purge were lost.
MANIFEST_CACHE_CONTROL = "public, max-age=5"


def s3_client(settings: Settings, max_pool: int = 32) -> S3Client:
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.aws_access_key_id.get_secret_value(),
        aws_secret_access_key=settings.aws_secret_access_key.get_secret_value(),
        config=Config(
            max_pool_connections=max_pool,
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
        ),
    )


def edge_client(timeout: float = 10.0) -> httpx.Client:
    return httpx.Client(timeout=timeout, follow_redirects=False)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_precondition_failed(exc: ClientError) -> bool:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error_code(exc) in {"PreconditionFailed", "ConditionalRequestConflict"} or status in (
        409,
        412,
    )


def is_missing(exc: ClientError) -> bool:
    return error_code(exc) in {"NoSuchKey", "404", "NotFound"}


# Objects the edge must never serve (uploaded archives, tokens) live under this prefix.
PRIVATE_PREFIX = "private/"


def upload_key(upload_id: str) -> str:
    return f"{PRIVATE_PREFIX}uploads/{upload_id}.tar.gz"


def legacy_upload_key(upload_id: str) -> str:
    """Where uploads were kept before they moved under private/ (read for migration only)."""
    return f"uploads/{upload_id}.tar.gz"
