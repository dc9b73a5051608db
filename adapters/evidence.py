"""The evidence limits every API process shares, and what the judge reads of them.

With `SKYLINE_REDIS_URL` set (the embedded stack's redis-server, Valkey in
compose) every API process counts in one place, so one, two or four processes
behind one port give the same answers:

    sk:cap:<session>                INCRBY  beacons a session sent (its cap), expires with the token
    sk:seen:<session>               SADD    the (version, outcome) and versions a session reported on
    sk:tok:<apartment>:<network>:<minute>   INCR   tokens a client network got (its budget)
    sk:ev:<labels>:<minute>:net|failnet     PFADD  client networks reporting, with a failure
    sk:ev:<labels>:<minute>:ok|bad          ZINCRBY  observations per network and outcome
    sk:ev:<labels>:<minute>:sessions        INCR   new sessions on the version
    sk:bld:<apartment>|<building>:<minute>  INCR   new sessions on the building (traffic before a rollout)

Keys of a minute live `RETENTION_SECONDS`. Without a URL each API process
keeps its own (MemoryEvidence; one API process only), and the worker reads
no evidence: the judge then decides on the figures alone, as before.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

import redis
import redis.asyncio as aredis

from skyline.evidence import TOP_NETWORKS, Evidence, VariantEvidence

RETENTION_SECONDS = 26 * 3600  # a day of steps, plus the hour before a rollout
MINUTE = 60
PREDICT_MINUTES = 10  # whole minutes of traffic before a step that make a prediction
Labels = tuple[str, str, str, str]  # apartment, building, unit, version


def _labels(labels: Labels) -> str:
    return "|".join(labels)


def minute(at: float) -> int:
    return int(at // MINUTE)


class EvidenceLedger(Protocol):
    async def admit(self, session: str, expires_at: float, count: int, cap: int) -> bool: ...
    async def first(self, session: str, expires_at: float, members: Sequence[str]) -> list[bool]: ...
    async def token(self, apartment: str, network: str, budget: int) -> bool: ...
    async def observe(
        self, labels: Labels, network: str, failed: bool, new_session: bool, new_building: bool
    ) -> None: ...


class RedisEvidence:
    """The shared ledger (API side, asyncio)."""

    def __init__(self, url: str) -> None:
        self.client: aredis.Redis = aredis.Redis.from_url(url)

    async def admit(self, session: str, expires_at: float, count: int, cap: int) -> bool:
        key = f"sk:cap:{session}"
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.incrby(key, count)
            pipe.expireat(key, int(expires_at) + MINUTE)
            sent, _ = await pipe.execute()
        if int(sent) > cap:
            await self.client.decrby(key, count)  # refused: not counted against the session
            return False
        return True

    async def first(self, session: str, expires_at: float, members: Sequence[str]) -> list[bool]:
        if not members:
            return []
        key = f"sk:seen:{session}"
        async with self.client.pipeline(transaction=True) as pipe:
            for member in members:
                pipe.sadd(key, member)
            pipe.expireat(key, int(expires_at) + MINUTE)
            answers = await pipe.execute()
        return [bool(a) for a in answers[:-1]]

    async def token(self, apartment: str, network: str, budget: int) -> bool:
        key = f"sk:tok:{apartment}:{network}:{minute(time.time())}"
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 2 * MINUTE)
            taken, _ = await pipe.execute()
        return int(taken) <= budget

    async def observe(
        self, labels: Labels, network: str, failed: bool, new_session: bool, new_building: bool
    ) -> None:
        now = minute(time.time())
        base = f"sk:ev:{_labels(labels)}:{now}"
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.pfadd(f"{base}:net", network)
            pipe.expire(f"{base}:net", RETENTION_SECONDS)
            outcome = "bad" if failed else "ok"
            pipe.zincrby(f"{base}:{outcome}", 1, network)
            pipe.expire(f"{base}:{outcome}", RETENTION_SECONDS)
            if failed:
                pipe.pfadd(f"{base}:failnet", network)
                pipe.expire(f"{base}:failnet", RETENTION_SECONDS)
            if new_session:
                pipe.incr(f"{base}:sessions")
                pipe.expire(f"{base}:sessions", RETENTION_SECONDS)
            if new_building:
                key = f"sk:bld:{labels[0]}|{labels[1]}:{now}"
                pipe.incr(key)
                pipe.expire(key, RETENTION_SECONDS)
            await pipe.execute()


class MemoryEvidence:
    """One process's own ledger, when no shared store is configured (caps per process)."""

    def __init__(self, max_sessions: int = 100_000) -> None:
        self.max_sessions = max_sessions
        self._sent: dict[str, int] = {}
        self._seen: dict[str, set[str]] = {}
        self._tokens: dict[tuple[str, str, int], int] = defaultdict(int)

    def _bound(self) -> None:
        # Sessions arrive in about expiry order: the oldest go first.
        while len(self._sent) > self.max_sessions:
            oldest = next(iter(self._sent))
            self._sent.pop(oldest)
            self._seen.pop(oldest, None)

    async def admit(self, session: str, expires_at: float, count: int, cap: int) -> bool:
        sent = self._sent.get(session, 0)
        if sent + count > cap:
            return False
        self._sent[session] = sent + count
        self._bound()
        return True

    async def first(self, session: str, expires_at: float, members: Sequence[str]) -> list[bool]:
        seen = self._seen.setdefault(session, set())
        out = []
        for member in members:
            out.append(member not in seen)
            seen.add(member)
        return out

    async def token(self, apartment: str, network: str, budget: int) -> bool:
        now = minute(time.time())
        for key in [k for k in self._tokens if k[2] < now]:
            del self._tokens[key]
        self._tokens[(apartment, network, now)] += 1
        return self._tokens[(apartment, network, now)] <= budget

    async def observe(
        self, labels: Labels, network: str, failed: bool, new_session: bool, new_building: bool
    ) -> None:
        return None  # nobody reads it: the worker has no access to this process


class EvidenceReader:
    """What the judge reads (worker side, synchronous): one variant over a span of time."""

    def __init__(self, url: str) -> None:
        self.client: redis.Redis = redis.Redis.from_url(url)

    def _minutes(self, start: float, end: float) -> list[int]:
        first, last = minute(start), minute(end)
        return list(range(max(first, last - RETENTION_SECONDS // MINUTE), last + 1))

    def _top(self, keys: list[str]) -> list[int]:
        present = [k for k in keys if self.client.exists(k)]
        if not present:
            return []
        scratch = f"sk:tmp:{time.time_ns()}"
        pipe = self.client.pipeline(transaction=True)
        pipe.zunionstore(scratch, present, aggregate="SUM")
        pipe.zrevrange(scratch, 0, TOP_NETWORKS - 1, withscores=True)
        pipe.delete(scratch)
        _, top, _ = pipe.execute()
        return [round(score) for _, score in top]

    def variant(self, labels: Labels, start: float, end: float) -> VariantEvidence:
        bases = [f"sk:ev:{_labels(labels)}:{m}" for m in self._minutes(start, end)]
        sessions = self.client.mget([f"{b}:sessions" for b in bases]) if bases else []
        return VariantEvidence(
            sessions=sum(int(s) for s in sessions if s is not None),
            networks=int(self.client.pfcount(*[f"{b}:net" for b in bases])),
            failing_networks=int(self.client.pfcount(*[f"{b}:failnet" for b in bases])),
            top_failures=self._top([f"{b}:bad" for b in bases]),
            top_successes=self._top([f"{b}:ok" for b in bases]),
        )

    def building_rate(self, apartment: str, building: str, before: float) -> float | None:
        """New sessions per second on the building in the hour before `before`, over the whole
        minutes it had traffic (None: less than PREDICT_MINUTES of it: no prediction)."""
        minutes = list(range(minute(before) - 60, minute(before)))
        counts = self.client.mget([f"sk:bld:{apartment}|{building}:{m}" for m in minutes])
        seen = [(m, int(c)) for m, c in zip(minutes, counts, strict=True) if c is not None]
        if not seen or len(minutes) - minutes.index(seen[0][0]) < PREDICT_MINUTES:
            return None
        span = (minutes[-1] + 1 - seen[0][0]) * MINUTE
        return sum(c for _, c in seen) / span


class _Look(Protocol):
    apartment: str
    building: str
    unit: str
    canary_version: str
    baseline_version: str | None


def gather_evidence(reader: EvidenceReader, inp: _Look, started: float, taken: float) -> Evidence | None:
    """Both variants' sessions and networks since the step began, and the building's traffic
    before it; None when the store cannot be read (the judge then decides on the figures)."""
    try:
        canary = reader.variant((inp.apartment, inp.building, inp.unit, inp.canary_version), started, taken)
        baseline = None
        if inp.baseline_version and inp.baseline_version != inp.canary_version:
            baseline = reader.variant(
                (inp.apartment, inp.building, inp.unit, inp.baseline_version), started, taken
            )
        rate = reader.building_rate(inp.apartment, inp.building, started)
    except redis.RedisError:
        return None
    if canary.sessions == 0 and (baseline is None or baseline.sessions == 0):
        return None  # no beacon came through the API: nothing to say about its sources
    return Evidence(
        canary=canary, baseline=baseline, seconds=max(0.0, taken - started), sessions_per_second_before=rate
    )
