"""One settings class for every Skyline process (API, worker, launcher, CLI).

Values come from `SKYLINE_*` environment variables, then an optional env file
(`SKYLINE_ENV_FILE`, default `.env`). The embedded stack's launcher exports the
addresses it picked, so worker and API started by it always agree.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SKYLINE_",
        env_file=os.environ.get("SKYLINE_ENV_FILE", ".env"),
        extra="ignore",
    )

    # Temporal
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "skyline-rollouts"

    # Object storage (S3 API): bundles, manifests, revisions
    s3_endpoint_url: str | None = "http://127.0.0.1:9000"
    s3_bucket: str = "skyline"
    s3_region: str = "us-east-1"
    aws_access_key_id: SecretStr = SecretStr("skyline")
    aws_secret_access_key: SecretStr = SecretStr("skyline-secret")

    # CDN edge. `edge_url` is the public base URL browsers use; objects are
    # served at {edge_url}/{bucket}/{key}.
    cdn_provider: Literal["varnish", "cloudfront"] = "varnish"
    edge_url: str = "http://127.0.0.1:6081"
    varnish_purge_url: str | None = None  # defaults to edge_url
    cloudfront_distribution_id: str | None = None
    cloudfront_endpoint_url: str | None = None
    edge_verify_attempts: int = Field(default=20, ge=1)

    # Metrics
    prometheus_url: str = "http://127.0.0.1:9090"
    prometheus_timeout_seconds: float = Field(default=5.0, gt=0)

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    bundle_upload_max_bytes: int = Field(default=200 * 1024 * 1024, gt=0)

    # Worker
    worker_activity_threads: int = Field(default=16, ge=1)
    upload_concurrency: int = Field(default=8, ge=1)

    # Embedded stack
    state_dir: Path = Path(".skyline")

    @property
    def purge_base_url(self) -> str:
        return self.varnish_purge_url or self.edge_url

    def public_url(self, key: str) -> str:
        return f"{self.edge_url.rstrip('/')}/{self.s3_bucket}/{key}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
