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
import ipaddress
import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from botocore.exceptions import ClientError
from fastapi import Depends, Request
from pydantic import BaseModel, Field, TypeAdapter

from adapters.storage import is_missing, is_precondition_failed
from api.access import RULES, Access, satisfies
from api.errors import ApiError
from skyline.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

Role = Literal["viewer", "deployer", "admin"]


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


PRINCIPAL = "skyline.principal"  # the scope key the gate (api/gate.py) leaves its verdict under
AUTH_SETTING = "SKYLINE_AUTH_TOKENS"


def is_loopback(host: str | None) -> bool:
    """A loopback address or `localhost`; anything else (0.0.0.0, names) is not."""
    if host is None:
        return False
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_refusal(settings: Settings) -> str | None:
    """Why this API must not start, if it would serve beyond this host with auth off.

    With no token configured every caller is an admin: fine for a development API on
    loopback, never for one other machines reach (issue 23: compose published exactly that)."""
    if settings.auth_tokens or settings.auth_tokens_file is not None or is_loopback(settings.api_host):
        return None
    return (
        f"refusing to start: SKYLINE_API_HOST={settings.api_host} serves other machines, and no "
        f"authentication is configured. Set {AUTH_SETTING} (or SKYLINE_AUTH_TOKENS_FILE) to at "
        "least one admin token (docs/security.md#api-auth), or bind SKYLINE_API_HOST=127.0.0.1."
    )


def _remote(client: str | None) -> bool:
    """A TCP client that is not on this host. In-process transports and Unix sockets
    name no IP address and are local by construction."""
    if client is None:
        return False
    try:
        return not ipaddress.ip_address(client.strip("[]")).is_loopback
    except ValueError:
        return False


async def authenticate(
    store: TokenStore, authorization: str, access: Access, client: str | None
) -> Principal:
    """The principal behind `authorization` if it may call a route of `access`; else ApiError
    401 (no or unknown token) or 403 (too weak a role). Reads no request body."""
    if access == "public":
        return Principal(name="anonymous", role="viewer", authenticated=False)
    if not store.enabled:
        if _remote(client):
            # Fail closed: auth off is for a loopback-bound development API only.
            raise ApiError(
                401,
                "unauthenticated",
                f"authentication is not configured ({AUTH_SETTING} unset): "
                "only clients on this host may call this route",
            )
        return Principal(name="anonymous", role="admin", authenticated=False)
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthenticated", "send 'Authorization: Bearer <token>'")
    record = await asyncio.to_thread(store.lookup, token.strip())
    if record is None:
        raise ApiError(401, "unauthenticated", "unknown or revoked token")
    if not satisfies(record.role, access):
        raise ApiError(
            403, "forbidden", f"token {record.name!r} has role {record.role}; this needs {access} or higher"
        )
    return Principal(name=record.name, role=record.role, authenticated=True)


async def caller(request: Request) -> Principal:
    """The route's caller, checked against RULES for the template the router matched.

    Behind the gate, its verdict for the same template stands; without it (an app
    assembled otherwise, or a template the gate matched differently) this authenticates
    here. A route with no rule is refused for everyone."""
    template = getattr(request.scope.get("route"), "path", None)
    access = RULES.get((request.method, str(template)))
    if access is None:
        raise ApiError(404, "not_found", f"no access rule for {request.method} {template} (api/access.py)")
    verdict = request.scope.get(PRINCIPAL)  # (template, principal) when the gate ran
    if isinstance(verdict, tuple) and verdict[0] == template and isinstance(verdict[1], Principal):
        return verdict[1]
    client = request.client.host if request.client else None
    principal = await authenticate(_store(request), request.headers.get("authorization", ""), access, client)
    request.scope[PRINCIPAL] = (template, principal)
    return principal


Caller = Annotated[Principal, Depends(caller)]


def require(role: Role) -> object:
    """Kept for routes written before api/access.py: the table's rule and `role`, whichever
    is stricter. New routes take `who: Caller` and get their rule from the table."""

    async def check(who: Caller) -> Principal:
        if not satisfies(who.role, role):
            raise ApiError(
                403, "forbidden", f"token {who.name!r} has role {who.role}; this needs {role} or higher"
            )
        return who

    return Depends(check)


Viewer = Annotated[Principal, require("viewer")]
Deployer = Annotated[Principal, require("deployer")]
Admin = Annotated[Principal, require("admin")]
