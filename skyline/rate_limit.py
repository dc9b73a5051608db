"""A token bucket per client, and what a shared store needs to keep the same one.

The in-memory bucket serves one process (no shared store configured); with Redis
the same bucket is kept as GCRA state (adapters/evidence.py), so one client's
rate holds across every process that answers it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple


class RateCheck(NamedTuple):
    """One request of `client` against the bucket named `bucket` (`burst` at once, `rate`/s)."""

    bucket: str
    client: str
    rate: float
    burst: float


class RateLimiter:
    """A token bucket per client: `burst` requests at once, `rate` per second after."""

    def __init__(
        self,
        rate: float,
        burst: float,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str) -> float:
        """0 when the request may pass, else the seconds until it would."""
        now = self._clock()
        tokens, last = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._remember(client, tokens - 1, now)
            return 0.0
        self._remember(client, tokens, now)
        return (1 - tokens) / self.rate

    def _remember(self, client: str, tokens: float, now: float) -> None:
        self._buckets[client] = (tokens, now)
        self._buckets.move_to_end(client)
        # The client idle longest goes first; it would be back to a full bucket anyway.
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
