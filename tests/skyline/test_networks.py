"""Client addresses behind (un)trusted proxies, and the networks evidence is counted by."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from skyline.networks import client_address, network_of, parse_networks
from skyline.settings import Settings

LB = parse_networks(["10.0.0.0/8", "2001:db8:ffff::/48"])


def test_without_trusted_proxies_the_client_is_the_tcp_peer_whatever_it_forwards() -> None:
    assert client_address("127.0.0.1", "203.0.113.9", ()) == "127.0.0.1"
    assert client_address("198.51.100.4", "203.0.113.9, 10.0.0.1", ()) == "198.51.100.4"
    assert client_address(None, "203.0.113.9", ()) == "unknown"


def test_an_untrusted_peer_is_the_client_even_when_proxies_are_configured() -> None:
    assert client_address("198.51.100.4", "203.0.113.9", LB) == "198.51.100.4"


def test_behind_trusted_proxies_the_nearest_untrusted_hop_is_the_client() -> None:
    # The client forged the first hop; the load balancer appended the real peer it saw.
    assert client_address("10.1.2.3", "6.6.6.6, 203.0.113.9", LB) == "203.0.113.9"
    # Two trusted hops (CDN -> LB) are skipped.
    assert client_address("10.1.2.3", "203.0.113.9, 10.9.9.9", LB) == "203.0.113.9"
    # Only trusted hops: the farthest one is all we know.
    assert client_address("10.1.2.3", "10.4.4.4", LB) == "10.4.4.4"
    assert client_address("10.1.2.3", None, LB) == "10.1.2.3"
    # Garbage written by a client stops the walk at the proxy that passed it on.
    assert client_address("10.1.2.3", "not-an-ip, 10.5.5.5", LB) == "10.5.5.5"
    assert client_address("2001:db8:ffff::1", "[2001:db8:1::7]", LB) == "2001:db8:1::7"


def test_networks_are_ipv4_slash_24_and_ipv6_slash_48() -> None:
    assert network_of("203.0.113.9") == "203.0.113.0/24"
    assert network_of("127.4.5.6") == network_of("127.4.5.200") != network_of("127.4.6.1")
    assert network_of("2001:db8:1:2::7") == "2001:db8:1::/48"
    assert network_of("::ffff:192.0.2.1") == "192.0.2.0/24"
    assert network_of("nonsense") == "unknown"


def test_trusted_proxies_setting_takes_json_or_commas_and_refuses_a_typo() -> None:
    assert Settings(trusted_proxies='["10.0.0.0/8"]').trusted_proxies == ["10.0.0.0/8"]
    assert Settings(trusted_proxies="10.0.0.0/8, 192.0.2.1").trusted_proxies == ["10.0.0.0/8", "192.0.2.1"]
    with pytest.raises(ValidationError, match="not an IP address or CIDR"):
        Settings(trusted_proxies=["10.0.0.0/33"])
