"""One settings class for every Skyline process (API, worker, launcher, CLI).

Values come from, highest priority first: `SKYLINE_*` environment variables,
an optional env file (`SKYLINE_ENV_FILE`, default `.env`), one file per secret
in `SKYLINE_SECRETS_DIR` (Docker/Kubernetes secrets, named like the variable,
e.g. `/run/secrets/skyline_temporal_api_key`), and an optional TOML file
(`SKYLINE_SETTINGS_FILE`, keys are the field names). The embedded stack's
launcher exports the addresses it picked, so worker and API started by it
always agree.

Credentials are `SecretStr`: they print as `**********` and are read with
`get_secret_value()` only where a client is built, so they never reach workflow
inputs, history or logs (tests/observability/test_secrets.py checks a real
rollout's history and the worker's log for them).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from skyline.networks import parse_networks

SETTINGS_FILE_ENV = "SKYLINE_SETTINGS_FILE"
SECRETS_DIR_ENV = "SKYLINE_SECRETS_DIR"


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
    # TLS to the frontend. Unset: on as soon as an API key (Temporal Cloud) or
    # a certificate is configured, off otherwise (the embedded dev server).
    # A client cert + key is mTLS (self-hosted or Temporal Cloud).
    temporal_tls: bool | None = None
    temporal_tls_ca_cert: FilePath | None = None  # server CA when it is not a public one
    temporal_tls_client_cert: FilePath | None = None
    temporal_tls_client_key: FilePath | None = None
    temporal_tls_server_name: str | None = None  # SNI / certificate host override
    temporal_api_key: SecretStr | None = None

    # Object storage (S3 API): bundles, manifests, revisions
    s3_endpoint_url: str | None = "http://127.0.0.1:9000"
    s3_bucket: str = "skyline"
    s3_region: str = "us-east-1"
    aws_access_key_id: SecretStr = SecretStr("skyline")
    aws_secret_access_key: SecretStr = SecretStr("skyline-secret")

    # CDN edge. `edge_url` is the public base URL browsers use; objects are
    # served at {edge_url}/{bucket}/{key}.
    cdn_provider: Literal["varnish", "cloudfront", "cloudflare", "fastly"] = "varnish"
    edge_url: str = "http://127.0.0.1:6081"
    varnish_purge_url: str | None = None  # defaults to edge_url
    cloudfront_distribution_id: str | None = None
    cloudfront_endpoint_url: str | None = None
    cloudflare_zone_id: str | None = None
    cloudflare_api_token: SecretStr | None = None
    cloudflare_api_url: str = "https://api.cloudflare.com/client/v4"
    fastly_api_token: SecretStr | None = None
    fastly_api_url: str = "https://api.fastly.com"
    fastly_soft_purge: bool = False
    # Invalidations are billed per path (CloudFront) or rate-limited: only
    # explicit paths unless an operator opts in.
    cdn_allow_wildcard_purges: bool = False
    edge_verify_attempts: int = Field(default=20, ge=1)

    # Metrics
    prometheus_url: str = "http://127.0.0.1:9090"
    prometheus_timeout_seconds: float = Field(default=5.0, gt=0)
    # The look that ends a bake waits (at most this long) for Prometheus to scrape past
    # it, so the step's last seconds are counted instead of read as "no loads".
    # Prometheus's default scrape interval is 15 s.
    prometheus_settle_seconds: float = Field(default=15.0, ge=0)

    # Webhooks: payloads are signed (x-skyline-signature: sha256=HMAC) with this key.
    webhook_secret: SecretStr | None = None
    # Outbound requests the deployer names (webhooks, smoke_url) may only reach public
    # addresses, unless an entry here names the destination: "host" or "host:port"
    # (the URL's host as written, any port / that port) or a CIDR ("10.1.0.0/16",
    # "127.0.0.2/32") matching every address the host resolves to.
    webhook_allowed_hosts: list[str] = Field(default_factory=list)

    # Deployer-supplied `bundle.path`: must be a directory under this root, reached
    # without symlinks. Unset: only uploaded archives (POST /bundles) can be published.
    bundle_root: Path | None = None

    # API auth: bearer tokens, stored hashed. Each entry "name:role:sha256hex" (role: viewer,
    # deployer, admin); or a JSON file [{"name", "role", "sha256"}]. None configured: auth is off.
    auth_tokens: list[str] = Field(default_factory=list)
    auth_tokens_file: Path | None = None
    # Minted tokens are re-listed from storage at most this often per API process:
    # a revocation is refused by every process within this many seconds.
    token_cache_seconds: float = Field(default=2.0, ge=0, le=60)

    # Controls (pause, resume, promote, rollback) the API sends to a workflow carry an
    # HMAC-SHA256 proof of their actor under this key, which the worker checks
    # (skyline/control_proof.py); an update without a proof is audited "actor unverified".
    # The API and every worker need the same key; while rotating, workers also accept the
    # previous one. Unset: the embedded stack generates one into its state dir.
    control_key: SecretStr | None = None
    control_previous_key: SecretStr | None = None

    # Progress deadline given to rollouts that do not set max_duration_seconds (seed 004).
    rollout_max_duration_seconds: float = Field(default=24 * 3600, gt=0)

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Collector (python -m collector): the browser-facing routes apart from the control API
    # (docs/operations.md#collectors). It holds no control route, so it may listen on any
    # address without tokens. collector_url is the public URL browsers use: set, the API
    # answers browser paths with a 308 there and new shell pages point at it; unset, the API
    # serves them itself (one process, development).
    collector_host: str = "127.0.0.1"
    collector_port: int = 8001
    collector_url: str | None = None
    # One access log line per beacon request is most of a collector's logging at thousands of
    # page loads a second and says less than its metrics (skyline_api_requests by route and
    # status, skyline_beacons_refused by reason): off unless asked for.
    collector_access_log: bool = False
    bundle_upload_max_bytes: int = Field(default=200 * 1024 * 1024, gt=0)
    # Request bodies of every route but POST /bundles (which has the limit above): 413 past it.
    api_max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    # Archives (uploads, and again when the worker unpacks them), checked while streaming.
    archive_max_files: int = Field(default=20_000, gt=0)
    archive_max_unpacked_bytes: int = Field(default=500 * 1024 * 1024, gt=0)
    archive_max_ratio: float = Field(default=100.0, gt=1)
    # RUM beacons (POST /beacons): body limit, per-client token bucket, manifest cache.
    beacon_max_bytes: int = Field(default=8192, gt=0)
    beacon_rate_per_second: float = Field(default=20.0, gt=0)
    beacon_burst: float = Field(default=40.0, ge=1)
    beacon_manifest_cache_seconds: float = Field(default=5.0, ge=0)
    # Beacon tokens (GET /beacon-token, api/beacon_tokens.py): the HMAC-SHA256 key that signs
    # them and, while rotating, the previous key (still accepted, never used to sign). Unset:
    # the embedded stack generates one into its state dir; an API process without one signs
    # with a random key of its own (tokens then die with the process; set it with >1 process).
    beacon_key: SecretStr | None = None
    beacon_previous_key: SecretStr | None = None
    beacon_token_ttl_seconds: float = Field(default=900.0, gt=0, le=86400)
    # Developer overrides (POST /overrides, api/overrides.py), signed with the beacon key:
    # the lifetime when the request names none, and the longest a deployer may ask for.
    override_ttl_seconds: float = Field(default=3600.0, gt=0, le=86400)
    override_max_ttl_seconds: float = Field(default=28800.0, gt=0, le=7 * 86400)
    # Beacons one token session (one page load) may send in its lifetime.
    beacon_session_max_beacons: int = Field(default=100, ge=1)
    # Beacon tokens one client network (IPv4 /24, IPv6 /48) may get per apartment and minute,
    # counted in the shared store: a budget on sessions, not a judge (skyline/plausibility.py).
    beacon_network_tokens_per_minute: int = Field(default=600, ge=1)
    # Proxies whose X-Forwarded-For is believed (CIDRs of a CDN's or load balancer's egress,
    # skyline/networks.py). Empty (the default, and the embedded stack): the client is the TCP
    # peer, whatever headers it sends.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Shared store of the evidence limits (session caps, token budgets, distinct client
    # networks) every API process and the worker use: redis://host:port/db. Unset: each
    # process keeps its own (one API process only; the judge then sees no network counts).
    redis_url: str | None = None
    # How long a collector waits for the shared store before a beacon, token or override
    # request is answered 503 `evidence_store_unavailable` (adapters/redis_pipe.py).
    redis_timeout_seconds: float = Field(default=2.0, gt=0)
    # Apartment ids are listed from storage this often; an unknown id waits for the next
    # listing, started at most once per min_relist seconds whatever the number of ids asked.
    beacon_apartments_refresh_seconds: float = Field(default=30.0, gt=0)
    beacon_apartments_min_relist_seconds: float = Field(default=1.0, ge=0)
    # The browser loader's source; unset: loader/skyline-loader.js of the checkout.
    # The image copies it elsewhere (site-packages holds no loader/).
    loader_source: Path | None = None

    # Worker. Activities are sync and run on one thread pool of exactly
    # `worker_max_concurrent_activities + worker_max_concurrent_local_activities` threads
    # (one per slot of either kind: with one thread per regular slot only, a started
    # activity waited behind the local ones, the judge and a rollback's restore, for one).
    # 64: most activity time is waiting (a look's settle waits for the next scrape, S3 and
    # Prometheus round trips), so threads are cheap and 16 slots queued 1,000 rollouts' looks.
    worker_max_concurrent_activities: int = Field(default=64, ge=1)
    # Local activities at once: the judge of every look and a rollback's restore.
    worker_max_concurrent_local_activities: int = Field(default=64, ge=1)
    worker_max_concurrent_workflow_tasks: int = Field(default=50, ge=2)
    # Long polls open at once per task kind (the SDK's default is 5): each poll's round trip
    # to a busy server bounds how fast tasks leave the queue. At most the slots above.
    worker_workflow_task_pollers: int = Field(default=10, ge=2)
    worker_activity_task_pollers: int = Field(default=10, ge=1)
    # Workflows kept in memory between tasks (sticky cache; the SDK's default is 1,000): an
    # evicted one replays its whole history on its next task. Size it above the rollouts a
    # worker runs at once.
    worker_max_cached_workflows: int = Field(default=2000, ge=0)
    # How long a workflow task waits on this worker's sticky queue before the server sends it
    # to the normal queue, where any worker takes it by reading and replaying the whole
    # history (the SDK's default is 10 s). Longer keeps a backlogged worker off replays; it is
    # also how long a task already queued for a worker that died waits (new tasks skip a
    # worker that stopped polling).
    worker_sticky_timeout_seconds: float = Field(default=10.0, gt=0)
    # Run workflow code in the SDK's sandbox (a nondeterministic call raises; each run gets
    # fresh module state). It costs CPU on every workflow task: the SDK asks the sandbox for
    # each payload's serialization context by exec'ing code in it. Off, a worker spent 11-26 %
    # less CPU per rollout in the concurrency benchmark (docs/operations.md, Sizing); the fast
    # workflow tests and the replay suite run every workflow sandboxed (the replay suite
    # unsandboxed too), so determinism stays checked in CI.
    worker_sandbox: bool = True
    # On SIGTERM: stop polling, give running activities this long to finish.
    worker_graceful_shutdown_seconds: float = Field(default=60.0, ge=0)
    # host:port of the worker's Prometheus endpoint (Temporal SDK + Skyline metrics); unset = off.
    worker_metrics_address: str | None = None
    upload_concurrency: int = Field(default=8, ge=1)

    # Logs: one JSON object per line (with rollout_id where known), or plain text.
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Skew protection: every file a manifest revision names stays in storage this long after
    # that revision stopped being served (`skyline manifest gc`; docs/bundles.md#skew-protection).
    # Seconds or ISO 8601 (`SKYLINE_RETENTION=P14D`).
    retention: timedelta = Field(default=timedelta(days=7), ge=timedelta(0))

    # Embedded stack
    state_dir: Path = Path(".skyline")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings, dotenv_settings]
        secrets_dir = os.environ.get(SECRETS_DIR_ENV)
        if secrets_dir:
            if not Path(secrets_dir).is_dir():
                raise ValueError(f"{SECRETS_DIR_ENV}={secrets_dir!r} is not a directory")
            sources.append(SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir))
        settings_file = os.environ.get(SETTINGS_FILE_ENV)
        if settings_file:
            if not Path(settings_file).is_file():
                raise ValueError(f"{SETTINGS_FILE_ENV}={settings_file!r} is not a file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=settings_file))
        return tuple(sources)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_list(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip()
            return (
                json.loads(value)
                if value.startswith("[")
                else [v.strip() for v in value.split(",") if v.strip()]
            )
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_cidrs(cls, value: list[str]) -> list[str]:
        parse_networks(value)  # a typo refuses to start rather than trusting nobody (or everybody)
        return value

    @field_validator("webhook_allowed_hosts", "auth_tokens", mode="before")
    @classmethod
    def _host_list(cls, value: object) -> object:
        # The environment gives JSON (decoded by the source); a dict of env values
        # (Settings.model_validate of a stack's env) gives it still encoded.
        if isinstance(value, str):
            value = value.strip()
            return json.loads(value) if value.startswith("[") else [v for v in value.split(",") if v.strip()]
        return value

    @field_validator("retention", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        # pydantic reads a bare number from a string as no duration at all; the docs
        # promise seconds (SKYLINE_RETENTION=30) next to ISO 8601 (P14D).
        if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
            return float(value)
        return value

    @model_validator(mode="after")
    def _temporal_tls(self) -> Settings:
        if (self.temporal_tls_client_cert is None) != (self.temporal_tls_client_key is None):
            raise ValueError(
                "mTLS needs both SKYLINE_TEMPORAL_TLS_CLIENT_CERT and SKYLINE_TEMPORAL_TLS_CLIENT_KEY"
            )
        certs = self.temporal_tls_ca_cert or self.temporal_tls_client_cert
        if self.temporal_tls is False and certs:
            raise ValueError(
                "SKYLINE_TEMPORAL_TLS=false contradicts the TLS certificates configured; remove one"
            )
        return self

    @model_validator(mode="after")
    def _embedded_s3_keys(self) -> Settings:
        """No S3 keys configured: the embedded stack's generated pair, if the state dir holds one
        (so the CLI, bench and demo reach `make run`'s storage as the worker and API do)."""
        if {"aws_access_key_id", "aws_secret_access_key"} & self.model_fields_set:
            return self
        path = self.state_dir / S3_CREDENTIALS
        if path.is_file():
            with contextlib.suppress(OSError, ValueError, KeyError):
                data = json.loads(path.read_text(encoding="utf-8"))
                self.aws_access_key_id = SecretStr(str(data["access_key_id"]))
                self.aws_secret_access_key = SecretStr(str(data["secret_access_key"]))
        return self

    @property
    def temporal_uses_tls(self) -> bool:
        if self.temporal_tls is not None:
            return self.temporal_tls
        return bool(self.temporal_api_key or self.temporal_tls_client_cert or self.temporal_tls_ca_cert)

    @property
    def worker_activity_threads(self) -> int:
        """The activity thread pool: one thread per activity slot, regular or local."""
        return self.worker_max_concurrent_activities + self.worker_max_concurrent_local_activities

    @property
    def control_keys(self) -> list[bytes]:
        """The keys a worker accepts control proofs under; the first signs (API, scheduled promotions)."""
        keys = (self.control_key, self.control_previous_key)
        return [k.get_secret_value().encode() for k in keys if k is not None and k.get_secret_value()]

    @property
    def purge_base_url(self) -> str:
        return self.varnish_purge_url or self.edge_url

    def edge_path(self, key: str) -> str:
        """The URL path the edge serves storage key `key` at (what a CDN purge names)."""
        return f"/{self.s3_bucket}/{key}"

    def public_url(self, key: str) -> str:
        return self.edge_url.rstrip("/") + self.edge_path(key)


S3_CREDENTIALS = "s3-credentials.json"


def generated_s3_keys(path: Path) -> tuple[str, str]:
    """The embedded S3 server's key pair kept at `path`, generated (0600) on first use."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        pair = {
            "access_key_id": "SKY" + secrets.token_hex(8).upper(),
            "secret_access_key": secrets.token_urlsafe(30),
        }
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(pair, out)
        os.replace(tmp, path)  # never half-written: the server and its clients read the same pair
    data = json.loads(path.read_text(encoding="utf-8"))
    return str(data["access_key_id"]), str(data["secret_access_key"])


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
