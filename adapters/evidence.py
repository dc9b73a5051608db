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
    sk:rate:<bucket>:<client>       SET    a client's request rate (GCRA: when its bucket is full again)

Each request is one Lua script (one round trip): a beacon batch takes the client's
rate, the session's cap, its first observations and their evidence at once.

Keys of a minute live `RETENTION_SECONDS`. Without a URL each API process
keeps its own (MemoryEvidence, rates too; one API process only), and the worker reads
no evidence: the judge then decides on the figures alone, as before.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import redis
import redis.asyncio as aredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from adapters.redis_pipe import Pipe
from skyline.evidence import TOP_NETWORKS, Evidence, VariantEvidence
from skyline.rate_limit import RateCheck, RateLimiter

RETENTION_SECONDS = 26 * 3600  # a day of steps, plus the hour before a rollout
MINUTE = 60
PREDICT_MINUTES = 10  # whole minutes of traffic before a step that make a prediction
Labels = tuple[str, str, str, str]  # apartment, building, unit, version


def _labels(labels: Labels) -> str:
    return "|".join(labels)


def minute(at: float) -> int:
    return int(at // MINUTE)


class Sighting(NamedTuple):
    """One beacon as the ledger sees it: the session's members it adds (its observation, its
    version, its building), and whether a first observation of it is evidence (`counted`:
    a load beacon outside an override). Tuples, as Ingested and RateCheck: a few are built
    per beacon request, and a frozen dataclass sets each field through object.__setattr__."""

    labels: Labels
    observation: str
    version: str
    building: str
    counted: bool
    failed: bool


class Ingested(NamedTuple):
    """What the ledger made of a batch: `wait` > 0 when the client's rate refused it, else
    `admitted` False when the session's cap did, else per sighting whether it was the
    session's first (observation, version, building)."""

    wait: float = 0.0
    admitted: bool = True
    firsts: tuple[tuple[bool, bool, bool], ...] = ()


class EvidenceUnavailable(Exception):
    """The shared store did not answer (down, hung past its timeout, refused): the request
    that needed it is answered 503, counted nowhere (a script may or may not have run)."""


class EvidenceLedger(Protocol):
    async def take(self, check: RateCheck) -> float: ...
    async def ingest(
        self,
        rate: RateCheck,
        session: str,
        expires_at: float,
        cap: int,
        network: str,
        sightings: Sequence[Sighting],
    ) -> Ingested: ...
    async def token(
        self, rate: RateCheck, apartment: str, network: str, budget: int
    ) -> tuple[float, bool]: ...


# GCRA: the bucket of RateLimiter (skyline/rate_limit.py) as one timestamp per client, the
# time at which its bucket is full again (`tat`, the theoretical arrival time):
# a request passes when tat + 1/rate - burst/rate <= now; else it waits the difference.
# Redis's clock, so every process sees one time. Returns "0" or the wait, as a string
# (Lua numbers become integers in replies).
_TAKE = """
local function take(key, rate, burst)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local interval = 1 / rate
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - burst * interval
  if allow_at > now then
    return allow_at - now
  end
  redis.call('SET', key, string.format('%.6f', new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
  return 0
end
"""

RATE_SCRIPT = (
    _TAKE
    + """
return string.format('%.6f', take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])))
"""
)

# A beacon batch in one round trip: the client's rate, the session's cap, the session's
# first observations, and the evidence of those that are (the keys of the module docstring).
# ARGV: rate, burst, count, cap, session expiry, network, retention, then 7 per sighting:
# observation, version, building members, counted, failed, evidence key base, building key.
#
# A key's expiry is set when the script creates it, never again: every key here is written
# by this script only, a creation shows in the reply (INCR and INCRBY give the count, a new
# sorted set's member scores 1, PFADD a new key answers 1; EXPIRE NX where a reply of 1 may
# also be an existing key's), and the script is atomic. Setting them on every write was
# about a third of the script's commands, and the script is most of Redis's CPU per beacon
# request (docs/benchmarks.md, ingest).
INGEST_SCRIPT = (
    _TAKE
    + """
local wait = take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if wait > 0 then return {'wait', string.format('%.6f', wait)} end
local count, cap, expiry = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local network, keep = ARGV[6], tonumber(ARGV[7])
local sent = redis.call('INCRBY', KEYS[2], count)
-- the session's first batch (or its first since one over the cap was taken back): the
-- count's key is new, and so is the set of what it reported if this batch is admitted
local first = sent == count
if first then redis.call('EXPIREAT', KEYS[2], expiry) end
if sent > cap then
  redis.call('DECRBY', KEYS[2], count)
  return {'cap'}
end
-- What the session reported before, asked once and added once (one command each rather
-- than one per member: Lua's redis.call costs more than the commands themselves); a member
-- repeated within the batch is new only the first time, as with one SADD per member.
local members = {}
for i = 8, #ARGV, 7 do
  members[#members + 1] = ARGV[i]
  members[#members + 1] = ARGV[i + 1]
  members[#members + 1] = ARGV[i + 2]
end
local known = redis.call('SMISMEMBER', KEYS[3], unpack(members))
redis.call('SADD', KEYS[3], unpack(members))
local taken = {}
local function new(k)
  local m = members[k]
  if known[k] == 1 or taken[m] then return 0 end
  taken[m] = true
  return 1
end
local out = {'ok'}
for i = 8, #ARGV, 7 do
  local k = (i - 8) / 7 * 3
  local o, v, b = new(k + 1), new(k + 2), new(k + 3)
  if o == 1 and ARGV[i + 3] == '1' then
    local base = ARGV[i + 5]
    -- PFADD answers 1 for a new key and for a new network (NX: the first expiry stays)
    if redis.call('PFADD', base .. ':net', network) == 1 then
      redis.call('EXPIRE', base .. ':net', keep, 'NX')
    end
    local outcome = base .. (ARGV[i + 4] == '1' and ':bad' or ':ok')
    if tonumber(redis.call('ZINCRBY', outcome, 1, network)) == 1 then
      redis.call('EXPIRE', outcome, keep, 'NX')
    end
    if ARGV[i + 4] == '1' then
      if redis.call('PFADD', base .. ':failnet', network) == 1 then
        redis.call('EXPIRE', base .. ':failnet', keep, 'NX')
      end
    end
    if v == 1 and redis.call('INCR', base .. ':sessions') == 1 then
      redis.call('EXPIRE', base .. ':sessions', keep)
    end
    if b == 1 and redis.call('INCR', ARGV[i + 6]) == 1 then
      redis.call('EXPIRE', ARGV[i + 6], keep)
    end
  end
  table.insert(out, o .. v .. b)
end
if first then redis.call('EXPIREAT', KEYS[3], expiry) end
return out
"""
)

# A beacon token: the client's rate, then its network's budget for the minute.
TOKEN_SCRIPT = (
    _TAKE
    + """
local wait = take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if wait > 0 then return {'wait', string.format('%.6f', wait)} end
local taken = redis.call('INCR', KEYS[2])
if taken == 1 then redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3])) end
if taken > tonumber(ARGV[4]) then return {'budget'} end
return {'ok'}
"""
)


def rate_key(check: RateCheck) -> str:
    return f"sk:rate:{check.bucket}:{check.client}"


class RedisEvidence:
    """The shared ledger (API side, asyncio): each call one script, one round trip.

    The scripts go through one pipelined connection per event loop (adapters/redis_pipe.py:
    many requests waiting on Redis at once share it), which also loads them again after a
    restart. The scripts name keys beyond KEYS (the evidence of a label set): one Redis or
    Valkey server, not a cluster."""

    def __init__(self, url: str, timeout: float | None = None) -> None:
        self.client: aredis.Redis = aredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        pipe = Pipe(url, timeout)
        self.pipe: Pipe | None = pipe if pipe.supported else None  # rediss://: redis-py's pool
        self._rate = self.client.register_script(RATE_SCRIPT)
        self._ingest = self.client.register_script(INGEST_SCRIPT)
        self._token = self.client.register_script(TOKEN_SCRIPT)

    async def _run(self, script: AsyncScript, keys: list[str], args: list[str | int | float]) -> Any:
        try:
            return await self._script(script, keys, args)
        except redis.RedisError as exc:
            raise EvidenceUnavailable(str(exc)) from exc

    async def _script(self, script: AsyncScript, keys: list[str], args: list[str | int | float]) -> Any:
        """EVALSHA straight away (the script object's call re-checks its client's type on every
        call). A server that lost the script (restarted, flushed) gets it loaded again and the
        script run once more, on the same connection: redis-py's pool may still hold a
        connection to the server that went away, which would fail the first request after."""
        if self.pipe is None:
            try:
                return await self.client.evalsha(script.sha, len(keys), *keys, *args)
            except NoScriptError:
                return await script(keys=keys, args=args)
        try:
            return await self.pipe.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            text = script.script
            assert isinstance(text, str)  # the scripts of this module
            await self.pipe.execute("SCRIPT", "LOAD", text)
            return await self.pipe.execute("EVALSHA", script.sha, len(keys), *keys, *args)

    async def aclose(self) -> None:
        """Close the running loop's connections (the pipelined one and redis-py's pool)."""
        if self.pipe is not None:
            await self.pipe.aclose()
        await self.client.aclose()

    async def take(self, check: RateCheck) -> float:
        answer = await self._run(self._rate, [rate_key(check)], [check.rate, check.burst])
        return float(answer)

    async def ingest(
        self,
        rate: RateCheck,
        session: str,
        expires_at: float,
        cap: int,
        network: str,
        sightings: Sequence[Sighting],
    ) -> Ingested:
        now = minute(time.time())
        args: list[str | int | float] = [
            rate.rate,
            rate.burst,
            len(sightings),
            cap,
            int(expires_at) + MINUTE,
            network,
            RETENTION_SECONDS,
        ]
        for s in sightings:
            args += [
                s.observation,
                s.version,
                s.building,
                int(s.counted),
                int(s.failed),
                f"sk:ev:{_labels(s.labels)}:{now}",
                f"sk:bld:{s.labels[0]}|{s.labels[1]}:{now}",
            ]
        keys = [rate_key(rate), f"sk:cap:{session}", f"sk:seen:{session}"]
        answer = await self._run(self._ingest, keys, args)
        verdict = answer[0].decode()
        if verdict == "wait":
            return Ingested(wait=float(answer[1]))
        if verdict == "cap":
            return Ingested(admitted=False)
        one = ord("1")  # each answer: "ovb", 1 where the member was the session's first
        return Ingested(firsts=tuple((a[0] == one, a[1] == one, a[2] == one) for a in answer[1:]))

    async def token(self, rate: RateCheck, apartment: str, network: str, budget: int) -> tuple[float, bool]:
        key = f"sk:tok:{apartment}:{network}:{minute(time.time())}"
        answer = await self._run(
            self._token, [rate_key(rate), key], [rate.rate, rate.burst, 2 * MINUTE, budget]
        )
        verdict = answer[0].decode()
        if verdict == "wait":
            return float(answer[1]), False
        return 0.0, verdict == "ok"


class MemoryEvidence:
    """One process's own ledger, when no shared store is configured (caps per process)."""

    def __init__(self, max_sessions: int = 100_000) -> None:
        self.max_sessions = max_sessions
        self._sent: dict[str, int] = {}
        self._seen: dict[str, set[str]] = {}
        self._tokens: dict[tuple[str, str, int], int] = defaultdict(int)
        self._rates: dict[str, RateLimiter] = {}

    def _bound(self) -> None:
        # Sessions arrive in about expiry order: the oldest go first.
        while len(self._sent) > self.max_sessions:
            oldest = next(iter(self._sent))
            self._sent.pop(oldest)
            self._seen.pop(oldest, None)

    async def take(self, check: RateCheck) -> float:
        limiter = self._rates.get(check.bucket)
        if limiter is None:
            limiter = self._rates[check.bucket] = RateLimiter(check.rate, check.burst)
        return limiter.take(check.client)

    async def ingest(
        self,
        rate: RateCheck,
        session: str,
        expires_at: float,
        cap: int,
        network: str,
        sightings: Sequence[Sighting],
    ) -> Ingested:
        wait = await self.take(rate)
        if wait > 0:
            return Ingested(wait=wait)
        sent = self._sent.get(session, 0)
        if sent + len(sightings) > cap:
            return Ingested(admitted=False)
        self._sent[session] = sent + len(sightings)
        self._bound()
        seen = self._seen.setdefault(session, set())
        firsts = []
        for s in sightings:
            members = (s.observation, s.version, s.building)
            flags = [m not in seen for m in members]
            seen.update(members)
            firsts.append((flags[0], flags[1], flags[2]))
        # The evidence itself is kept nowhere: the worker has no access to this process.
        return Ingested(firsts=tuple(firsts))

    async def token(self, rate: RateCheck, apartment: str, network: str, budget: int) -> tuple[float, bool]:
        wait = await self.take(rate)
        if wait > 0:
            return wait, False
        now = minute(time.time())
        for key in [k for k in self._tokens if k[2] < now]:
            del self._tokens[key]
        self._tokens[(apartment, network, now)] += 1
        return 0.0, self._tokens[(apartment, network, now)] <= budget


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
