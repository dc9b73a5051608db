"""Whether a request gets in: the gate's and the `Caller` dependency's decisions, pure.

api/gate.py and api/auth.py do the I/O (read the scope, look a token up in the
store, answer); what they decide lives here and in api/access.py (which rule a
route has), so the fast layer (tests/skyline/test_admission.py,
tests/skyline/test_access_rules.py) and `make mutants` check every decision
without starting a server.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl

from pydantic import BaseModel, Field

from api.access import RULES, Access, satisfies
from api.errors import ApiError
from skyline.settings import Settings
from skyline.text import CONTROL

Role = Literal["viewer", "deployer", "admin"]
AUTH_SETTING = "SKYLINE_AUTH_TOKENS"
# A refused body up to this size is read and dropped by the server, keeping the connection;
# a larger or chunked one is not read: the connection closes after the answer.
DRAIN_AT_MOST = 64 * 1024


class TokenRecord(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    role: Role
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    authenticated: bool

    def actor(self, claimed: str) -> str:
        """Who did it: the token's name when auth is on, else what the caller says."""
        return self.name if self.authenticated else claimed


def control_field(path: str, query: bytes) -> str | None:
    """The field that holds a control character (`path` or a query parameter's name), if any."""
    if CONTROL.search(path):
        return "path"
    try:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return "query"
    for name, value in pairs:
        if CONTROL.search(name) or CONTROL.search(value):
            return name if not CONTROL.search(name) else "query"
    return None


def unread_body_too_large(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """A refused request whose body the server should not read: announced larger than
    DRAIN_AT_MOST, chunked, or with a length that is not a number."""
    found = dict(headers)
    length = found.get(b"content-length", b"0").strip()
    return b"transfer-encoding" in found or not length.isdigit() or int(length) > DRAIN_AT_MOST


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


def is_remote(client: str | None) -> bool:
    """A TCP client that is not on this host. In-process transports and Unix sockets
    name no IP address and are local by construction."""
    if client is None:
        return False
    try:
        return not ipaddress.ip_address(client.strip("[]")).is_loopback
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


def without_token(access: Access, auth_enabled: bool, client: str | None) -> Principal | None:
    """The principal decided before any token is read, or None when the token decides.

    A public route: anonymous. Auth off (no token configured): an anonymous admin, but only
    for a client on this host; any other gets ApiError 401 (fail closed)."""
    if access == "public":
        return Principal(name="anonymous", role="viewer", authenticated=False)
    if auth_enabled:
        return None
    if is_remote(client):
        raise ApiError(
            401,
            "unauthenticated",
            f"authentication is not configured ({AUTH_SETTING} unset): "
            "only clients on this host may call this route",
        )
    return Principal(name="anonymous", role="admin", authenticated=False)


def bearer_token(authorization: str) -> str:
    """The token of an `Authorization: Bearer <token>` header (scheme in any case); ApiError 401
    for another scheme or an empty token."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthenticated", "send 'Authorization: Bearer <token>'")
    return token.strip()


def admit(record: TokenRecord | None, access: Access) -> Principal:
    """The principal of a looked-up token on a route of `access`: ApiError 401 for an unknown
    (or revoked) token, 403 for a role below the route's."""
    if record is None:
        raise ApiError(401, "unauthenticated", "unknown or revoked token")
    if not satisfies(record.role, access):
        raise ApiError(
            403, "forbidden", f"token {record.name!r} has role {record.role}; this needs {access} or higher"
        )
    return Principal(name=record.name, role=record.role, authenticated=True)


def route_rule(method: str, template: str | None) -> Access:
    """The rule of the route the router matched; ApiError 404 for a route without one
    (a route missing from api/access.py is refused for everyone)."""
    access = RULES.get((method, str(template)))
    if access is None:
        raise ApiError(404, "not_found", f"no access rule for {method} {template} (api/access.py)")
    return access


def gate_verdict(verdict: object, template: str | None) -> Principal | None:
    """The principal the gate left in the scope, if it checked this very template."""
    if isinstance(verdict, tuple) and verdict[0] == template and isinstance(verdict[1], Principal):
        return verdict[1]
    return None


def role_allows(who: Principal, role: Role) -> Principal:
    """`who` if its role is `role` or higher; else ApiError 403 (the stricter check of `require`)."""
    if not satisfies(who.role, role):
        raise ApiError(
            403, "forbidden", f"token {who.name!r} has role {who.role}; this needs {role} or higher"
        )
    return who
