"""Beacon tokens: a beacon must come from a page that loaded the apartment's manifest.

The loader asks `GET /beacon-token?apartment=<id>&revision=<n>` once per page
load, after reading the manifest, and sends the answer with every beacon
batch. A token is

    base64url(claims JSON) "." base64url(HMAC-SHA256(key, "skyline-beacon-v1." + claims part))

with claims `{"v": 1, "a": apartment, "u": {building: ["unit@version", ...]},
"e": expiry (unix seconds), "s": random session id}` and, for a page that
applies a developer override (api/overrides.py), `"o": {building:
["unit@version"]}`: the overridden units, which only beacons labelled
`override` may name. The units are the ones
the manifest lets a page load at issue time (each building's active unit and
the unit in rollout), so a token minted for one apartment or before a canary
existed cannot report on anything else. The key is `SKYLINE_BEACON_KEY`
(`SKYLINE_BEACON_PREVIOUS_KEY` is still accepted while rotating). Nothing
here is secret from the browser: the claims are readable, only the signature
cannot be forged. What the token does not stop (a real browser reporting
made-up outcomes for its own session, bounded by the per-session cap) is in
docs/security.md.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from skyline.manifest import ApartmentManifest, unit_key
from skyline.split import bucket_of, in_percentage

DOMAIN = b"skyline-beacon-v1."
BUCKET_DOMAIN = b"skyline-bucket-v1."
MAX_TOKEN_CHARS = 4096

TokenProblem = Literal["missing", "malformed", "signature", "expired", "apartment", "unit"]


class TokenError(Exception):
    def __init__(self, problem: TokenProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message


_NO_OVERRIDES: Mapping[str, frozenset[str]] = MappingProxyType({})


class Claims(NamedTuple):
    """A verified token's claims. A tuple rather than a frozen dataclass: one is built per
    beacon request, and a frozen dataclass sets each field through object.__setattr__."""

    apartment: str
    units: Mapping[str, frozenset[str]]  # building -> {"unit@version", ...}
    expires_at: int
    session: str
    # building -> the unit a signed override makes this page load (beacons labelled override)
    overrides: Mapping[str, frozenset[str]] = _NO_OVERRIDES

    def allows(self, building: str, unit: str, version: str) -> bool:
        return unit_key(unit, version) in self.units.get(building, frozenset())

    def allows_override(self, building: str, unit: str, version: str) -> bool:
        """An overridden building may report its override and the units the manifest offers."""
        if building not in self.overrides:
            return False
        return unit_key(unit, version) in self.overrides[building] or self.allows(building, unit, version)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def loadable_units(manifest: ApartmentManifest, apartment: str) -> dict[str, list[str]]:
    """building -> the unit keys a page may load now: the active unit and the unit in rollout."""
    found = manifest.apartments.get(apartment)
    if found is None:
        return {}
    out: dict[str, list[str]] = {}
    for building_id, building in sorted(found.buildings.items()):
        keys = [u.id for u in (building.active(), building.canary()) if u is not None]
        if keys:
            out[building_id] = sorted(set(keys))
    return out


def assigned_units(
    manifest: ApartmentManifest, apartment: str, bucket_id: str | None
) -> dict[str, list[str]]:
    """building -> the unit keys a page with this bucket id may report on: the unit the split
    gives the bucket (skyline/split.py, the loader's computation) and the active unit, its
    fallback after a canary failure (and the unit of a page the criteria exclude). Without a
    bucket id (a first visit: the page split before it had a key) the active unit alone."""
    found = manifest.apartments.get(apartment)
    if found is None:
        return {}
    out: dict[str, list[str]] = {}
    for building_id, building in sorted(found.buildings.items()):
        active = building.active()
        keys = [] if active is None else [active.id]
        canary = building.canary()
        if (
            bucket_id is not None
            and canary is not None
            and canary.rollout is not None
            and in_percentage(bucket_of(bucket_id, apartment, building_id), canary.rollout.percentage)
        ):
            keys.append(canary.id)
        if keys:
            out[building_id] = sorted(set(keys))
    return out


class HmacCodec:
    """`base64url(claims JSON) "." base64url(HMAC-SHA256(key, domain + claims part))`.

    The machinery every signed token of Skyline shares (beacon tokens here, developer
    overrides in api/overrides.py): one key signs, `previous` keys still verify while
    rotating, and the domain separates the kinds, so a token of one kind never verifies
    as another. `what` names the kind in error messages."""

    def __init__(
        self, domain: bytes, key: bytes, previous: Iterable[bytes] = (), what: str = "token"
    ) -> None:
        if len(key) < 16:
            raise ValueError("the beacon key must be at least 16 bytes")
        self.domain = domain
        self.what = what
        self._key = key
        self._keys = [key, *[k for k in previous if k]]

    def _sign(self, key: bytes, payload: str) -> bytes:
        return hmac.digest(key, self.domain + payload.encode("ascii"), "sha256")  # one C call

    def encode(self, body: Mapping[str, Any]) -> str:
        payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        return f"{payload}.{_b64(self._sign(self._key, payload))}"

    def decode(self, token: str) -> Any:
        """The claims of a token one of our keys signed (not yet checked for expiry)."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
            raise TokenError("malformed", f"the {self.what} is not a token Skyline issued")
        payload, _, signature = token.partition(".")
        try:
            given = _unb64(signature)
            for key in self._keys:  # the current key first: the others only while rotating
                if hmac.compare_digest(given, self._sign(key, payload)):
                    return json.loads(_unb64(payload))
            raise TokenError("signature", f"the {self.what}'s signature does not verify")
        except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
            raise TokenError("malformed", f"the {self.what} is not a token Skyline issued") from exc


def _unit_sets(raw: Any) -> dict[str, frozenset[str]]:
    return {str(b): frozenset(str(k) for k in keys) for b, keys in raw.items()}


class BucketKeys:
    """Bucket keys: the split id of one browser, chosen and signed by the API.

    `base64url({"k": id}) "." HMAC(key, "skyline-bucket-v1." + payload)`. The loader keeps
    the key (localStorage) and splits by its id, as skyline/split.py does with a user id; the
    API assigns the same way from the verified id, so a page cannot pick its bucket (it can
    only ask for a new, random one). No expiry: a browser keeps its bucket."""

    def __init__(self, key: bytes, previous: Iterable[bytes] = ()) -> None:
        self._codec = HmacCodec(BUCKET_DOMAIN, key, previous, what="bucket key")

    def issue(self, bucket_id: str | None = None) -> str:
        return self._codec.encode({"k": bucket_id or secrets.token_urlsafe(12)})

    def verify(self, key: str | None) -> str | None:
        """The id of a key the API signed, else None (a new key is then issued)."""
        if not key:
            return None
        try:
            body = self._codec.decode(key)
        except TokenError:
            return None
        found = body.get("k") if isinstance(body, dict) else None
        return found if isinstance(found, str) and 0 < len(found) <= 200 else None


class BeaconSigner:
    """Issues and verifies tokens; `previous` keys verify but never sign."""

    def __init__(
        self,
        key: bytes,
        previous: Iterable[bytes] = (),
        ttl_seconds: float = 900,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._codec = HmacCodec(DOMAIN, key, previous, what="beacon token")
        self.ttl_seconds = ttl_seconds
        self._clock = clock

    def issue(
        self,
        apartment: str,
        units: Mapping[str, list[str]],
        overrides: Mapping[str, list[str]] | None = None,
    ) -> tuple[str, Claims]:
        expires_at = int(self._clock() + self.ttl_seconds)
        session = secrets.token_urlsafe(12)
        body: dict[str, Any] = {"v": 1, "a": apartment, "u": dict(units), "e": expires_at, "s": session}
        if overrides:
            body["o"] = dict(overrides)
        token = self._codec.encode(body)
        claims = Claims(
            apartment,
            {b: frozenset(k) for b, k in units.items()},
            expires_at,
            session,
            {b: frozenset(k) for b, k in (overrides or {}).items()},
        )
        return token, claims

    def verify(self, token: object) -> Claims:
        if token is None or token == "":
            raise TokenError(
                "missing",
                'no beacon token: send {"token": <GET /beacon-token?apartment=...>, "beacons": [...]}',
            )
        if not isinstance(token, str):
            raise TokenError("malformed", "the beacon token is not a token Skyline issued")
        body = self._codec.decode(token)
        try:
            if body["v"] != 1:
                raise TokenError("malformed", "unknown beacon token version")
            claims = Claims(
                apartment=str(body["a"]),
                units=_unit_sets(body["u"]),
                expires_at=int(body["e"]),
                session=str(body["s"]),
                overrides=_unit_sets(body.get("o") or {}),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise TokenError("malformed", "the beacon token is not a token Skyline issued") from exc
        if claims.expires_at <= self._clock():
            raise TokenError("expired", "the beacon token has expired; get a new one from /beacon-token")
        return claims
