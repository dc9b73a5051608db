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
import json
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from botocore.exceptions import ClientError
from fastapi import Depends, Request
from pydantic import BaseModel, Field, TypeAdapter

from activities.storage import is_missing
from api.errors import ApiError
from skyline.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

Role = Literal["viewer", "deployer", "admin"]
RANK: dict[str, int] = {"viewer": 0, "deployer": 1, "admin": 2}
TOKENS_KEY = "auth/tokens.json"


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


class TokenStore:
    """Configured tokens (settings, file) plus tokens minted by admins (in S3)."""

    def __init__(self, settings: Settings, s3: S3Client) -> None:
        self.s3 = s3
        self.bucket = settings.s3_bucket
        self.configured: list[TokenRecord] = []
        self._cache: tuple[float, list[TokenRecord]] | None = None
        for entry in settings.auth_tokens:
            name, role, digest = entry.split(":", 2)
            self.configured.append(TokenRecord(name=name, role=role, sha256=digest))
        if settings.auth_tokens_file is not None:
            self.configured += RECORDS.validate_json(settings.auth_tokens_file.read_bytes())

    def minted(self) -> list[TokenRecord]:
        # Re-read at most every few seconds: every request checks, minting is rare.
        now = time.monotonic()
        if self._cache is not None and now - self._cache[0] < 2.0:
            return self._cache[1]
        records = self._read_minted()
        self._cache = (now, records)
        return records

    def _read_minted(self) -> list[TokenRecord]:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=TOKENS_KEY)["Body"].read()
        except ClientError as exc:
            if is_missing(exc):
                return []
            raise
        return RECORDS.validate_json(body)

    def save_minted(self, records: list[TokenRecord]) -> None:
        body = json.dumps([r.model_dump() for r in records], indent=2).encode()
        self.s3.put_object(Bucket=self.bucket, Key=TOKENS_KEY, Body=body, ContentType="application/json")
        self._cache = None

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
