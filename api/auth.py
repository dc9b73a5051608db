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
from typing import TYPE_CHECKING, Annotated

from botocore.exceptions import ClientError
from fastapi import Depends, Request
from pydantic import TypeAdapter

from adapters.storage import is_missing, is_precondition_failed
from api.access import Access
from api.admission import AUTH_SETTING as AUTH_SETTING
from api.admission import Principal as Principal
from api.admission import Role as Role
from api.admission import TokenRecord as TokenRecord
from api.admission import admit, bearer_token, gate_verdict, role_allows, route_rule, without_token
from api.admission import exposure_refusal as exposure_refusal
from api.admission import is_loopback as is_loopback
from skyline.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

RECORDS = TypeAdapter(list[TokenRecord])


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "sky_" + secrets.token_urlsafe(32)


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


async def authenticate(
    store: TokenStore, authorization: str, access: Access, client: str | None
) -> Principal:
    """The principal behind `authorization` if it may call a route of `access`; else ApiError
    401 (no or unknown token) or 403 (too weak a role). Reads no request body. The decisions
    are api/admission.py's; this looks the token up."""
    principal = without_token(access, store.enabled, client)
    if principal is not None:
        return principal
    token = bearer_token(authorization)
    record = await asyncio.to_thread(store.lookup, token)
    return admit(record, access)


async def caller(request: Request) -> Principal:
    """The route's caller, checked against RULES for the template the router matched.

    Behind the gate, its verdict for the same template stands; without it (an app
    assembled otherwise, or a template the gate matched differently) this authenticates
    here. A route with no rule is refused for everyone."""
    template = getattr(request.scope.get("route"), "path", None)
    access = route_rule(request.method, template)
    checked = gate_verdict(request.scope.get(PRINCIPAL), template)  # (template, principal) when the gate ran
    if checked is not None:
        return checked
    client = request.client.host if request.client else None
    principal = await authenticate(_store(request), request.headers.get("authorization", ""), access, client)
    request.scope[PRINCIPAL] = (template, principal)
    return principal


Caller = Annotated[Principal, Depends(caller)]


def require(role: Role) -> object:
    """Kept for routes written before api/access.py: the table's rule and `role`, whichever
    is stricter. New routes take `who: Caller` and get their rule from the table."""

    async def check(who: Caller) -> Principal:
        return role_allows(who, role)

    return Depends(check)


Viewer = Annotated[Principal, require("viewer")]
Deployer = Annotated[Principal, require("deployer")]
Admin = Annotated[Principal, require("admin")]
