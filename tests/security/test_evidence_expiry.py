"""Every key a beacon request or a token writes in the shared store expires (adapters/evidence.py).

The scripts set a key's expiry when they create it and never again (a third fewer commands
per beacon request). What could go wrong with that: a key written first by a path that set
no expiry, or a session's keys created by a batch other than the one that set their expiry.
Checked on the stack's real redis-server: after new sessions, later batches of the same
session, a batch refused by the cap before one admitted, failures and tokens, no `sk:` key
of the run is left without an expiry, each within what the docstring promises, and the
evidence still reads back as counted.
"""

from __future__ import annotations

import time

import pytest
import redis

from adapters.evidence import MINUTE, RETENTION_SECONDS, EvidenceReader, RedisEvidence, Sighting
from skyline.rate_limit import RateCheck
from stack.embedded import EmbeddedStack
from tests.support.scenario import unique


def sighting(apartment: str, version: str, outcome: str) -> Sighting:
    """As api/routes/beacons.py _sighting builds it for a load beacon outside an override."""
    return Sighting(
        labels=(apartment, "main", "u", version),
        observation=f"o|main|u|{version}|{outcome}|load|False",
        version=f"v|main|u|{version}|False",
        building="b|main|False",
        counted=True,
        failed=outcome != "loaded",
    )


@pytest.mark.asyncio(loop_scope="session")
async def test_no_key_the_ledger_writes_is_left_without_an_expiry(stack: EmbeddedStack) -> None:
    apartment = unique("exp")
    ledger = RedisEvidence(stack.redis_url)
    expires_at = time.time() + 900
    cap = 4

    def rate() -> RateCheck:
        return RateCheck("beacons", f"10.77.{unique('c')[-4:]}", 1e6, 1e6)

    loaded, failed = sighting(apartment, "2.0.0", "loaded"), sighting(apartment, "2.0.0", "load_error")
    first, second, refused_then_admitted = unique("s"), unique("s"), unique("s")
    try:
        # A new session, then a later batch of it: the second batch writes existing keys.
        one = await ledger.ingest(rate(), first, expires_at, cap, "10.77.1.0/24", [loaded])
        again = await ledger.ingest(rate(), first, expires_at, cap, "10.77.1.0/24", [failed])
        # Another session and network on the same unit version and minute.
        other = await ledger.ingest(rate(), second, expires_at, cap, "10.77.2.0/24", [failed])
        # A first batch over the cap is taken back; the next, smaller, is admitted.
        over = await ledger.ingest(
            rate(), refused_then_admitted, expires_at, cap, "10.77.3.0/24", [loaded] * 5
        )
        under = await ledger.ingest(rate(), refused_then_admitted, expires_at, cap, "10.77.3.0/24", [loaded])
        # Tokens: the network's budget key.
        for _ in range(3):
            assert (await ledger.token(rate(), apartment, "10.77.1.0/24", 100)) == (0.0, True)
    finally:
        await ledger.aclose()
    assert one.firsts == ((True, True, True),)
    assert again.firsts == ((True, False, False),)
    assert other.firsts == ((True, True, True),)
    assert not over.admitted and under.admitted and under.firsts == ((True, True, True),)

    client = redis.Redis.from_url(stack.redis_url)
    sessions = (first, second, refused_then_admitted)
    keys = [k.decode() for k in client.scan_iter(match=f"sk:*{apartment}*", count=1000)]
    keys += [f"sk:{kind}:{s}" for kind in ("cap", "seen") for s in sessions]
    evidence = [k for k in keys if k.startswith("sk:ev:")]
    assert {k.rsplit(":", 1)[1] for k in evidence} == {"net", "failnet", "ok", "bad", "sessions"}
    assert any(k.startswith("sk:bld:") for k in keys) and any(k.startswith("sk:tok:") for k in keys)
    for key in keys:
        ttl = client.ttl(key)
        limit = RETENTION_SECONDS if key.startswith(("sk:ev:", "sk:bld:")) else 900 + MINUTE + 5
        if key.startswith("sk:tok:"):
            limit = 2 * MINUTE
        assert 0 < ttl <= limit, (key, ttl)

    # The evidence reads back as counted: three sessions on the version (the refused batch
    # counted nothing), two networks failing and three reporting.
    read = EvidenceReader(stack.redis_url).variant(
        (apartment, "main", "u", "2.0.0"), time.time() - 120, time.time() + 1
    )
    assert read.sessions == 3
    assert (read.networks, read.failing_networks) == (3, 2)
    assert sorted(read.top_failures) == [1, 1] and sorted(read.top_successes) == [1, 1]
