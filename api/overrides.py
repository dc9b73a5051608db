"""Developer and QA overrides: a signed, short-lived token that makes one browser load a chosen
unit version of one building, including a version at 0 % that no one else gets.

A deployer (or admin) asks `POST /overrides`; the token is

    base64url(claims JSON) "." base64url(HMAC-SHA256(key, "skyline-override-v1." + claims part))

with claims `{"v": 1, "a": apartment, "b": building, "u": "unit@version", "e": expiry,
"i": issuer}`, signed with the beacon key (`SKYLINE_BEACON_KEY`, the previous key verifies
while rotating) through the same machinery as beacon tokens (api/beacon_tokens.HmacCodec)
under its own domain, so a beacon token is never an override and an override never a beacon
token. The browser keeps the token (the loader stores it in localStorage) but cannot forge or
extend it: the expiry is inside the signed claims. The loader never trusts what a token says
about URLs: it asks `GET /overrides/unit?token=…`, which verifies the signature and the
expiry and answers the unit (entry URL, SRI, files) from the manifests Skyline wrote, so an
override can only ever load a bundle Skyline published, with the integrity it recorded.

Loads under an override are labelled `override: true` in beacons and counted apart
(`skyline_unit_override_loads_total`), never in the series the canary's analysis reads.

An override can be revoked before it expires (`POST /overrides/revoke`, `skyline rollout
revoke-preview`): one private object per revoked token, `private/overrides/revoked/<expiry>-<sha256
of the token>.json`, kept only until the token would have expired anyway, so the list stays short.
`GET /overrides/unit` (and the beacon token's override labels) consult it, re-listed at most
every `SKYLINE_TOKEN_CACHE_SECONDS` per API process: a revoked link stops forcing its version
everywhere within that bound, and at once on the process that revoked it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from api.beacon_tokens import MAX_TOKEN_CHARS, HmacCodec, TokenError
from skyline.manifest import SLUG, Unit, unit_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DOMAIN = b"skyline-override-v1."
# One page may carry this many overrides (one per building).
MAX_OVERRIDES = 8


@dataclass(frozen=True)
class Override:
    apartment: str
    building: str
    unit: str  # the unit's name
    version: str
    expires_at: int
    issuer: str

    @property
    def key(self) -> str:
        return unit_key(self.unit, self.version)


class OverrideSigner:
    """Issues and verifies override tokens; `previous` keys verify but never sign."""

    def __init__(
        self, key: bytes, previous: Iterable[bytes] = (), clock: Callable[[], float] = time.time
    ) -> None:
        self._codec = HmacCodec(DOMAIN, key, previous, what="override token")
        self._clock = clock

    def issue(
        self, apartment: str, building: str, unit: str, version: str, ttl_seconds: float, issuer: str
    ) -> tuple[str, Override]:
        expires_at = int(self._clock() + ttl_seconds)
        body = {
            "v": 1,
            "a": apartment,
            "b": building,
            "u": unit_key(unit, version),
            "e": expires_at,
            "i": issuer,
        }
        return self._codec.encode(body), Override(apartment, building, unit, version, expires_at, issuer)

    def verify(self, token: object) -> Override:
        if token is None or token == "":
            raise TokenError("missing", "no override token: give ?token=<POST /overrides>")
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            raise TokenError("malformed", "the override token is not a token Skyline issued")
        body: Any = self._codec.decode(token)
        try:
            if body["v"] != 1:
                raise TokenError("malformed", "unknown override token version")
            name, _, version = str(body["u"]).partition("@")
            found = Override(
                apartment=str(body["a"]),
                building=str(body["b"]),
                unit=name,
                version=version,
                expires_at=int(body["e"]),
                issuer=str(body.get("i", "")),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise TokenError("malformed", "the override token is not a token Skyline issued") from exc
        if not (SLUG.match(found.apartment) and SLUG.match(found.building) and found.unit and found.version):
            raise TokenError("malformed", "the override token is not a token Skyline issued")
        if found.expires_at <= self._clock():
            raise TokenError("expired", "the override token has expired; ask for a new one (POST /overrides)")
        return found


class UnitCache:
    """`unit@version` of a building -> the published unit, kept per process (bounded).

    A key of `Building.units` never changes its bundle, so a found unit stays right; only
    misses are looked up again (a version may be published after a first miss)."""

    def __init__(self, find: Callable[[str, str, str, str | None], Unit | None], size: int = 256) -> None:
        self._find = find
        self._size = size
        self._units: OrderedDict[tuple[str, str, str, str | None], Unit] = OrderedDict()

    def get(self, apartment: str, building: str, version: str, unit: str | None) -> Unit | None:
        key = (apartment, building, version, unit)
        found = self._units.get(key)
        if found is not None:
            self._units.move_to_end(key)
            return found
        found = self._find(apartment, building, version, unit)
        if found is not None:
            self._units[key] = found
            while len(self._units) > self._size:
                self._units.popitem(last=False)
        return found


REVOKED_PREFIX = "private/overrides/revoked/"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Revocation(BaseModel):
    """Who revoked which override (the object's body; the key alone is what the check reads)."""

    sha256: str
    apartment: str
    building: str
    unit: str
    expires_at: int
    revoked_by: str
    revoked_at: int


class OverrideRevocations:
    """The revoked override tokens still unexpired: a short list in storage, cached per process."""

    def __init__(
        self, s3: S3Client, bucket: str, ttl_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.ttl = ttl_seconds
        self._clock = clock
        self._cache: tuple[float, frozenset[str]] | None = None
        self._lock = threading.Lock()

    @staticmethod
    def _key(expires_at: int, digest: str) -> str:
        return f"{REVOKED_PREFIX}{expires_at}-{digest}.json"

    def _listed(self) -> list[tuple[int, str, str]]:
        """(expires_at, digest, key) of every revocation object."""
        found = []
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=REVOKED_PREFIX)
        for page in pages:
            for item in page.get("Contents", []):
                name = item["Key"].removeprefix(REVOKED_PREFIX).removesuffix(".json")
                expires, _, digest = name.partition("-")
                if expires.isdigit() and digest:
                    found.append((int(expires), digest, item["Key"]))
        return found

    def revoked_digests(self) -> frozenset[str]:
        with self._lock:
            now = time.monotonic()  # before the listing: the bound holds for slow reads
            if self._cache is not None and now - self._cache[0] < self.ttl:
                return self._cache[1]
            wall = self._clock()
            digests = frozenset(d for expires, d, _ in self._listed() if expires > wall)
            self._cache = (now, digests)
            return digests

    def is_revoked(self, token: str) -> bool:
        return token_digest(token) in self.revoked_digests()

    def revoke(self, token: str, override: Override, who: str) -> Revocation:
        """Record the revocation (idempotent), and drop the entries whose tokens have expired."""
        record = Revocation(
            sha256=token_digest(token),
            apartment=override.apartment,
            building=override.building,
            unit=override.key,
            expires_at=override.expires_at,
            revoked_by=who,
            revoked_at=int(self._clock()),
        )
        self.s3.put_object(
            Bucket=self.bucket,
            Key=self._key(override.expires_at, record.sha256),
            Body=record.model_dump_json().encode(),
            ContentType="application/json",
        )
        wall = self._clock()
        for expires, _, key in self._listed():
            if expires <= wall:  # the token is refused as expired anyway
                self.s3.delete_object(Bucket=self.bucket, Key=key)
        with self._lock:
            self._cache = None  # this process refuses it from the next request on
        return record
