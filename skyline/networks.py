"""Who a beacon came from: the client address behind trusted proxies, and its network.

A page is untrusted, and so is every header it sends. The client address is the
TCP peer, unless the peer is a proxy the deployer named (`SKYLINE_TRUSTED_PROXIES`,
CIDRs: a CDN's or load balancer's egress ranges); then `X-Forwarded-For` is read
right to left and the first hop that is not a trusted proxy is the client. A
client behind no trusted proxy that sends `X-Forwarded-For` is ignored: rotating
it changes nothing.

Evidence is counted by client network, not address: an IPv4 /24 or an IPv6 /48,
about what one site, office or cloud tenant holds, so one attacker with many
addresses in one allocation is still one network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

IPV4_PREFIX = 24
IPV6_PREFIX = 48


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs (or bare addresses) as networks; ValueError naming the first that is not one."""
    out: list[Network] = []
    for cidr in cidrs:
        text = cidr.strip()
        if not text:
            continue
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address or CIDR (e.g. 10.0.0.0/8)") from None
    return tuple(out)


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client's address: the TCP `peer`, or behind trusted proxies the nearest untrusted
    `X-Forwarded-For` hop. A malformed hop stops the walk at the proxy that added it."""
    if peer is None:
        return "unknown"
    if not trusted:  # the common case, and per request: no parsing
        return peer
    here = _address(peer)
    if here is None or not trusted or not _trusted(here, trusted):
        return peer
    for hop in reversed([h for h in (forwarded_for or "").split(",") if h.strip()]):
        address = _address(hop)
        if address is None:
            return str(here)  # garbage a client wrote: the last proxy we trust saw `here`
        if not _trusted(address, trusted):
            return str(address)
        here = address
    return str(here)


@lru_cache(maxsize=65_536)  # per beacon request; parsing an address costs more than the lookup
def network_of(address: str) -> str:
    """The client network of an address: `a.b.c.0/24` or the /48 of an IPv6 address."""
    parsed = _address(address)
    if parsed is None:
        return "unknown"
    prefix = IPV4_PREFIX if parsed.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{parsed}/{prefix}", strict=False))
