"""Bearer tokens with roles: viewer (read), deployer (start and steer rollouts), admin (everything).

Tokens are never stored in clear: configuration holds `sha256(token)` per name,
and tokens minted through the API are kept hashed in object storage. The
token's name is the actor recorded on every action it takes. With no token
configured in settings, auth is off (local development) and `/readyz` says so.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from botocore.exceptions import ClientError
from fastapi import Depends, Request
from pydantic import BaseModel, Field, TypeAdapter

from adapters.storage import is_missing, is_precondition_failed
from api.errors import ApiError
from skyline.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

Role = Literal["viewer", "deployer", "admin"]
RANK: dict[str, int] = {"viewer": 0, "deployer": 1, "admin": 2}


class TokenRecord(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    role: Role
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


RECORDS = TypeAdapter(list[TokenRecord])


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "sky_" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    authenticated: bool

    def actor(self, claimed: str) -> str:
        """Who did it: the token's name when auth is on, else what the caller says."""
        return self.name if self.authenticated else claimed


TOKENS_PREFIX = "private/tokens/"  # one object per minted token; never served by the edge
LEGACY_TOKENS_KEY = "auth/tokens.json"  # the single shared document of old; migrated once


def token_key(name: str) -> str:
    return f"{TOKENS_PREFIX}{name}.json"


class TokenStore:
    """Configured tokens (settings, file) plus tokens minted by admins (in S3).

    Each minted token is its own object, created with If-None-Match: * (so two
    mints never overwrite each other, and a name is taken once) and revoked by
    deleting that object. Every process re-lists the prefix at most every
    `token_cache_seconds`: a revocation is refused everywhere within that bound.
    """

    def __init__(self, settings: Settings, s3: S3Client) -> None:
        self.s3 = s3
        self.bucket = settings.s3_bucket
        self.ttl = settings.token_cache_seconds
        self.configured: list[TokenRecord] = []
        self._cache: tuple[float, list[TokenRecord]] | None = None
        self._bodies: dict[str, tuple[str, TokenRecord]] = {}  # key -> (ETag, record)
        self._migrated = False
        self._lock = threading.Lock()
        for entry in settings.auth_tokens:
            name, role, digest = entry.split(":", 2)
            self.configured.append(TokenRecord(name=name, role=role, sha256=digest))
        if settings.auth_tokens_file is not None:
            self.configured += RECORDS.validate_json(settings.auth_tokens_file.read_bytes())

    def minted(self) -> list[TokenRecord]:
        # Re-listed at most every ttl seconds: every request checks, minting is rare.
        with self._lock:
            now = time.monotonic()  # taken before the listing: the bound holds for slow reads
            if self._cache is not None and now - self._cache[0] < self.ttl:
                return self._cache[1]
            records = self._read_minted()
            self._cache = (now, records)
            return records

    def _read_minted(self) -> list[TokenRecord]:
        self._migrate_once()
        listed: dict[str, str] = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=TOKENS_PREFIX
        ):
            for item in page.get("Contents", []):
                listed[item["Key"]] = item.get("ETag", "")
        bodies: dict[str, tuple[str, TokenRecord]] = {}
        for key, etag in listed.items():
            known = self._bodies.get(key)
            if known is not None and known[0] == etag:
                bodies[key] = known
                continue
            try:
                body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except ClientError as exc:
                if is_missing(exc):  # revoked between the listing and the read
                    continue
                raise
            bodies[key] = (etag, TokenRecord.model_validate_json(body))
        self._bodies = bodies
        return sorted((record for _, record in bodies.values()), key=lambda r: r.name)

    def _migrate_once(self) -> None:
        """Tokens minted before one-object-per-token lived in one public document: move them."""
        if self._migrated:
            return
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=LEGACY_TOKENS_KEY)["Body"].read()
        except ClientError as exc:
            if not is_missing(exc):
                raise
        else:
            for record in RECORDS.validate_json(body):
                self._create(record)
            self.s3.delete_object(Bucket=self.bucket, Key=LEGACY_TOKENS_KEY)
        self._migrated = True

    def _create(self, record: TokenRecord) -> bool:
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=token_key(record.name),
                Body=record.model_dump_json().encode(),
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if is_precondition_failed(exc):
                return False
            raise
        return True

    def mint(self, record: TokenRecord) -> bool:
        """Store a new token; False if a minted token of that name exists."""
        created = self._create(record)
        with self._lock:
            self._cache = None
        return created

    def revoke(self, name: str) -> bool:
        """Delete a minted token; False if there was none of that name."""
        try:
            self.s3.head_object(Bucket=self.bucket, Key=token_key(name))
        except ClientError as exc:
            if is_missing(exc) or "404" in str(exc):
                return False
            raise
        self.s3.delete_object(Bucket=self.bucket, Key=token_key(name))
        with self._lock:
            self._cache = None
        return True

    @property
    def enabled(self) -> bool:
        # Only configuration turns auth on (with at least a bootstrap admin):
        # minting a token must never lock out a deployment that runs without.
        return bool(self.configured)

    def lookup(self, token: str) -> TokenRecord | None:
        digest = hash_token(token)
        for record in [*self.configured, *self.minted()]:
            if hmac.compare_digest(record.sha256, digest):
                return record
        return None


def _store(request: Request) -> TokenStore:
    store: TokenStore = request.app.state.skyline.tokens
    return store


def require(role: Role) -> object:
    async def check(request: Request) -> Principal:
        store = _store(request)
        if not store.enabled:
            return Principal(name="anonymous", role="admin", authenticated=False)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthenticated", "send 'Authorization: Bearer <token>'")
        record = await asyncio.to_thread(store.lookup, token.strip())
        if record is None:
            raise ApiError(401, "unauthenticated", "unknown or revoked token")
        if RANK[record.role] < RANK[role]:
            raise ApiError(
                403, "forbidden", f"token {record.name!r} has role {record.role}; this needs {role} or higher"
            )
        return Principal(name=record.name, role=record.role, authenticated=True)

    return Depends(check)


Viewer = Annotated[Principal, require("viewer")]
Deployer = Annotated[Principal, require("deployer")]
Admin = Annotated[Principal, require("admin")]
