"""Outbound requests to URLs a deployer names (webhooks, smoke URL): no internal destinations.

A URL may only reach public unicast addresses, checked after DNS resolution
(every address the name resolves to), unless `webhook_allowed_hosts` names the
destination. The request is then sent to the very address that was checked
(the URL's host is kept in the Host header and as TLS server name), so a name
that resolves differently a moment later (DNS rebinding) cannot redirect it.

Allowlist entries:
- `host` or `host:port` (`[v6]:port`): the URL's host as written, any port / that port;
- a CIDR (`10.1.0.0/16`, `127.0.0.2/32`, `fd00::/8`): every resolved address lies in it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
ALLOW_SETTING = "SKYLINE_WEBHOOK_ALLOWED_HOSTS"


class OutboundRefused(ValueError):
    """The URL names a destination Skyline will not contact; the message says why."""


@dataclass(frozen=True)
class Target:
    """Where to connect: the checked address, and what the server must see (Host, SNI)."""

    url: str  # the URL with its host replaced by the checked address
    host: str  # the URL's host, for the Host header and TLS server name
    host_header: str
    address: str


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def _ip(value: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return None


def forbidden_reason(address: IPAddress) -> str | None:
    """Why an address is internal (loopback, private, …), or None for a public unicast one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for label, flag in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if flag:
            return label
    if not address.is_global:
        return "not public"
    return None


def _split(url: str) -> tuple[SplitResult, str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise OutboundRefused("only http:// and https:// URLs are allowed")
    host = (parts.hostname or "").lower()
    if not host:
        raise OutboundRefused("the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise OutboundRefused("the URL has an invalid port") from exc
    return parts, host, port


class Allowlist:
    def __init__(self, entries: Sequence[str]) -> None:
        self.hosts: set[tuple[str, int | None]] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            if "/" in entry:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            host, port = entry, None
            if entry.startswith("["):
                host, _, rest = entry[1:].partition("]")
                port = int(rest[1:]) if rest.startswith(":") else None
            elif entry.count(":") == 1:
                host, _, number = entry.partition(":")
                port = int(number)
            self.hosts.add((host, port))

    def names(self, host: str, port: int) -> bool:
        return (host, None) in self.hosts or (host, port) in self.hosts

    def covers(self, addresses: Sequence[IPAddress]) -> bool:
        return bool(addresses) and all(any(a in net for net in self.networks) for a in addresses)


def literal_refusal(url: str, allowed: Sequence[str]) -> str | None:
    """What the API can tell without DNS: a literal internal IP or a localhost name not allowlisted."""
    try:
        _, host, port = _split(url)
    except OutboundRefused as exc:
        return str(exc)
    allow = Allowlist(allowed)
    if allow.names(host, port):
        return None
    address = _ip(host)
    if address is not None:
        reason = forbidden_reason(address)
        if reason and not allow.covers([address]):
            return f"{host} is a {reason} address; add it to {ALLOW_SETTING} to allow it"
        return None
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return f"{host} is an internal name; add it to {ALLOW_SETTING} to allow it"
    return None


def resolve_target(url: str, allowed: Sequence[str], resolver: Resolver | None = None) -> Target:
    """Check where `url` leads and return the address to connect to; OutboundRefused otherwise."""
    parts, host, port = _split(url)
    allow = Allowlist(allowed)
    literal = _ip(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            found = (resolver or _system_resolver)(host, port)
        except (OSError, UnicodeError) as exc:
            raise OutboundRefused(f"{host} does not resolve") from exc
        addresses = [a for a in (_ip(v) for v in found) if a is not None]
        if not addresses:
            raise OutboundRefused(f"{host} does not resolve")
    if not (allow.names(host, port) or allow.covers(addresses)):
        internal = [(a, r) for a in addresses if (r := forbidden_reason(a))]
        if internal:
            # Name an address the allowlist does not cover (one answer may mix both).
            address, reason = next(((a, r) for a, r in internal if not allow.covers([a])), internal[0])
            shown = host if literal is not None else f"{host} resolves to {address}, which"
            raise OutboundRefused(f"{shown} is a {reason} address; add it to {ALLOW_SETTING} to allow it")
    address = addresses[0]
    netloc_host = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    default_port = 443 if parts.scheme == "https" else 80
    netloc = netloc_host if parts.port is None else f"{netloc_host}:{port}"
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    host_header = parts.hostname or host
    if ":" in host_header:
        host_header = f"[{host_header}]"
    if port != default_port:
        host_header = f"{host_header}:{port}"
    pinned = parts._replace(netloc=netloc).geturl()
    return Target(url=pinned, host=host, host_header=host_header, address=str(address))
