"""RUM beacons: what the loader reports, the limits on it, and the metrics it feeds.

The series are exactly the ones skyline/analysis.py queries:

    skyline_unit_loads_total{apartment,building,unit,version,outcome}
    skyline_unit_load_seconds{apartment,building,unit,version}   (histogram)

and, from beacons of kind "vitals" (the loader's optional web-vitals report),
histograms of the pages that loaded each unit version, for dashboards and
custom `value` checks:

    skyline_web_vitals_lcp_seconds / _inp_seconds / _cls {apartment,building,unit,version}

A page is untrusted input, so a beacon is counted only when it carries a
beacon token Skyline signed for its apartment and unit version
(api/beacon_tokens.py), its session has not used up its cap, and every label
names something the apartment's manifest holds (apartment, building, and the
build `<unit>@<version>` in that building): the label space is bounded by the
manifests, whatever a malicious page sends. Anything refused is counted
nowhere but in `skyline_beacons_refused_total{reason}`, whose labels are fixed.

    skyline_beacon_sessions_total{apartment,building,unit,version}

counts the distinct token sessions that reported on a unit version, so the
judge can tell many beacons from few pages. Every series of a unit version
starts at 0 the first time the version is seen (a token naming it, or its first
accepted beacon), so `increase()` counts its very first failure.

Storage is only read for apartments that exist: ApartmentDirectory lists them
(`skyline_beacon_storage_reads_total{kind}` counts every listing and manifest
read made for beacons and tokens), and a flood naming unknown apartments costs
at most one listing per `beacon_apartments_min_relist_seconds`, globally.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from prometheus_client import Counter, Histogram
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from adapters.manifest_store import ManifestStore
from skyline.manifest import SLUG, ApartmentManifest
from skyline.observability import child
from skyline.rate_limit import RateLimiter as RateLimiter  # where it lived; tests import it here

LABELS = ("apartment", "building", "unit", "version")
Outcome = Literal["loaded", "load_error", "runtime_error"]
OUTCOMES: tuple[Outcome, ...] = ("loaded", "load_error", "runtime_error")
RefusalReason = Literal[
    "too_large",
    "rate_limited",
    "malformed",
    "invalid",
    "unknown_label",
    "token",
    "session_limit",
    "unassigned",
    "unavailable",  # the shared evidence store did not answer (503)
]

# Bucket bounds around the judge's default p99 bound (1 s), fine enough below
# it that histogram_quantile interpolates within a useful range.
LOAD_SECONDS_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0)

UNIT_LOADS = Counter(
    "skyline_unit_loads", "Micro-frontend unit loads reported by browsers, by outcome", [*LABELS, "outcome"]
)
UNIT_LOAD_SECONDS = Histogram(
    "skyline_unit_load_seconds",
    "Time from starting to load a unit to its mount() returning, successful loads only",
    LABELS,
    buckets=LOAD_SECONDS_BUCKETS,
)
REFUSED = Counter("skyline_beacons_refused", "Beacon requests refused, by reason", ["reason"])
SESSIONS = Counter(
    "skyline_beacon_sessions",
    "Distinct beacon-token sessions (page loads) that reported on a unit version",
    LABELS,
)
STORAGE_READS = Counter(
    "skyline_beacon_storage_reads",
    "Storage requests made to check beacons and hand out beacon tokens (listing, manifest)",
    ["kind"],
)
# Loads under a developer override (beacons labelled `override`, api/overrides.py): counted
# here only, never in skyline_unit_loads_total, so an override cannot move a canary's analysis.
# Labels are bounded by the manifests and by the overrides deployers signed.
OVERRIDE_LOADS = Counter(
    "skyline_unit_override_loads",
    "Unit loads under a signed developer override (excluded from the canary analysis), by outcome",
    [*LABELS, "outcome"],
)
# Every accepted load beacon, repeats of one session included (dashboards: how often units
# mount). The judge reads skyline_unit_loads_total, where a session counts once per outcome.
REPORTED_LOADS = Counter(
    "skyline_unit_reported_loads",
    "Unit load beacons accepted, every repeat of a page included, by outcome",
    [*LABELS, "outcome"],
)
TOKENS = Counter(
    "skyline_beacon_tokens",
    "GET /beacon-token answers, by outcome",
    ["outcome"],
)

# Web vitals of the pages that loaded a unit version (beacons of kind "vitals"): LCP
# around its 2.5 s "good" bound, INP around 200 ms, CLS around 0.1 (web.dev thresholds).
LCP_SECONDS_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0, 20.0)
INP_SECONDS_BUCKETS = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
CLS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.0)
LCP_SECONDS = Histogram(
    "skyline_web_vitals_lcp_seconds",
    "Largest Contentful Paint of pages that loaded the unit version (web-vitals, via the loader)",
    LABELS,
    buckets=LCP_SECONDS_BUCKETS,
)
INP_SECONDS = Histogram(
    "skyline_web_vitals_inp_seconds",
    "Interaction to Next Paint of pages that loaded the unit version (web-vitals, via the loader)",
    LABELS,
    buckets=INP_SECONDS_BUCKETS,
)
CLS = Histogram(
    "skyline_web_vitals_cls",
    "Cumulative Layout Shift of pages that loaded the unit version (web-vitals, via the loader)",
    LABELS,
    buckets=CLS_BUCKETS,
)
VITALS = {"lcp": LCP_SECONDS, "inp": INP_SECONDS, "cls": CLS}

MAX_BEACONS_PER_REQUEST = 20


class Vitals(BaseModel):
    """Web vitals of one page (web-vitals' values; LCP and INP in seconds)."""

    model_config = ConfigDict(extra="forbid")

    lcp: float | None = Field(default=None, ge=0, le=600, description="Largest Contentful Paint, seconds")
    inp: float | None = Field(default=None, ge=0, le=600, description="Interaction to Next Paint, seconds")
    cls: float | None = Field(default=None, ge=0, le=100, description="Cumulative Layout Shift")

    @field_validator("lcp", "inp", "cls")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _some(self) -> Vitals:
        if self.lcp is None and self.inp is None and self.cls is None:
            raise ValueError("give at least one of lcp, inp, cls")
        return self


class Beacon(BaseModel):
    """kind "load" (the default): one unit load and its outcome. kind "vitals": the web
    vitals of a page that loaded this unit version; no outcome, counted in no load series."""

    model_config = ConfigDict(extra="forbid")

    apartment: str = Field(max_length=63)
    building: str = Field(max_length=63)
    unit: str = Field(min_length=1, max_length=100)
    version: str = Field(min_length=1, max_length=100)
    kind: Literal["load", "vitals"] = "load"
    outcome: Outcome | None = None
    load_seconds: float | None = Field(default=None, ge=0, le=3600)
    vitals: Vitals | None = None
    # The page loaded this building under a signed developer override (api/overrides.py):
    # counted apart, never in the series the canary's analysis reads.
    override: bool = False

    @field_validator("apartment", "building")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG.match(value):
            raise ValueError(f"{value[:70]!r} is not an apartment/building id")
        return value

    @field_validator("load_seconds")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number of seconds")
        return value

    @model_validator(mode="after")
    def _timed(self) -> Beacon:
        if self.kind == "vitals":
            if self.vitals is None:
                raise ValueError("vitals is required when kind is 'vitals'")
            if self.outcome is not None or self.load_seconds is not None:
                raise ValueError("a vitals beacon carries no outcome or load_seconds")
            return self
        if self.vitals is not None:
            raise ValueError("vitals go in a beacon of kind 'vitals'")
        if self.outcome is None:
            raise ValueError("outcome is required (loaded, load_error, runtime_error)")
        if self.outcome == "loaded" and self.load_seconds is None:
            raise ValueError("load_seconds is required when outcome is 'loaded'")
        return self


class BeaconBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # From GET /beacon-token (checked after the shape, see api/beacon_tokens.py).
    token: str | None = Field(default=None, max_length=4096)
    beacons: list[Beacon] = Field(min_length=1, max_length=MAX_BEACONS_PER_REQUEST)


def parse_batch(payload: Any) -> BeaconBatch:
    """`{"token", "beacons": [...]}` as the loader sends it, or one bare beacon object
    (with its `token` beside the beacon's fields)."""
    if isinstance(payload, dict) and "beacons" not in payload:
        bare = dict(payload)
        token = bare.pop("token", None)
        payload = {"token": token, "beacons": [bare]}
    return BeaconBatch.model_validate(payload)


def unknown_label(manifest: ApartmentManifest | None, beacon: Beacon) -> tuple[str, str] | None:
    """(field, message) naming the first label the manifest does not know, else None."""
    if manifest is None or beacon.apartment not in manifest.apartments:
        return "apartment", f"no apartment {beacon.apartment!r}"
    buildings = manifest.apartments[beacon.apartment].buildings
    building = buildings.get(beacon.building)
    if building is None:
        return "building", f"apartment {beacon.apartment!r} has no building {beacon.building!r}"
    # The unit is not checked against today's manifest: the signed token vouches for it (the
    # manifest offered it when the token was issued, or it is the page's override). A page that
    # loaded a canary just before its rollback reports after the manifest dropped it.
    return None


_SEEN: set[tuple[str, str, str, str]] = set()


def touch(apartment: str, building: str, unit: str, version: str) -> None:
    """Create every series of a unit version at 0 the first time it is seen in this process:
    a counter series born at 1 is invisible to increase(), so its first failure would be lost."""
    labels = (apartment, building, unit, version)
    if labels in _SEEN:
        return
    for outcome in OUTCOMES:
        UNIT_LOADS.labels(*labels, outcome)
        REPORTED_LOADS.labels(*labels, outcome)
    UNIT_LOAD_SECONDS.labels(*labels)
    SESSIONS.labels(*labels)
    for histogram in VITALS.values():
        histogram.labels(*labels)
    _SEEN.add(labels)


def record(
    beacons: list[Beacon],
    new_sessions: Iterable[tuple[str, str, str, str]] = (),
    first: list[bool] | None = None,
) -> None:
    """Count accepted beacons, and the sessions reporting on a unit version for the first time.

    A session is one observation per unit version and outcome: a load beacon counts in the
    evidence (skyline_unit_loads_total, the load-time histogram) only where `first` says it is
    the session's first of its version and outcome; every one counts in
    skyline_unit_reported_loads_total. Overridden loads go to skyline_unit_override_loads_total
    alone (their vitals nowhere)."""
    for b in beacons:
        if b.override:
            if b.outcome is not None:
                child(OVERRIDE_LOADS, b.apartment, b.building, b.unit, b.version, b.outcome).inc()
            continue
        touch(b.apartment, b.building, b.unit, b.version)
    for labels in new_sessions:
        child(SESSIONS, *labels).inc()
    for index, b in enumerate(beacons):
        if b.override:
            continue
        if b.vitals is not None:
            for name, histogram in VITALS.items():
                value = getattr(b.vitals, name)
                if value is not None:
                    child(histogram, b.apartment, b.building, b.unit, b.version).observe(value)
            continue
        if b.outcome is None:
            continue
        series = _load_series(b.apartment, b.building, b.unit, b.version, b.outcome)
        series.reported.inc()
        if first is not None and not first[index]:
            continue
        series.loads.inc()
        if b.outcome == "loaded" and b.load_seconds is not None:
            series.seconds.observe(b.load_seconds)


class _LoadSeries(NamedTuple):
    reported: Any
    loads: Any
    seconds: Any


_LOAD_SERIES: dict[tuple[str, str, str, str, str], _LoadSeries] = {}


def _load_series(apartment: str, building: str, unit: str, version: str, outcome: str) -> _LoadSeries:
    """The three series a load beacon counts in, found with one lookup (three per beacon)."""
    key = (apartment, building, unit, version, outcome)
    found = _LOAD_SERIES.get(key)
    if found is None:
        found = _LOAD_SERIES[key] = _LoadSeries(
            child(REPORTED_LOADS, *key),
            child(UNIT_LOADS, *key),
            child(UNIT_LOAD_SECONDS, *key[:4]),
        )
    return found


class ApartmentDirectory:
    """The apartment ids storage holds, so that unknown ids never cost a manifest read.

    Listed on first use and every `refresh` seconds. An id not in the list
    waits for the next listing, which starts at most once per `min_relist`
    seconds whatever the number of unknown ids asked about (a global negative
    cache): a new apartment is found within `min_relist`, and a flood of
    invented ids costs one listing per interval.
    """

    def __init__(
        self,
        list_ids: Callable[[], list[str]],
        refresh: float = 30.0,
        min_relist: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._list = list_ids
        self.refresh = refresh
        self.min_relist = min_relist
        self._clock = clock
        self._ids: frozenset[str] | None = None
        self._started_at = -math.inf
        self._lock = asyncio.Lock()
        self.listings = 0

    async def _relist(self, asked_at: float) -> None:
        async with self._lock:
            if self._started_at >= asked_at:
                return  # a listing that began after we asked covers us
            wait = self._started_at + self.min_relist - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
            self._started_at = self._clock()
            self.listings += 1
            self._ids = frozenset(await asyncio.to_thread(self._list))

    async def knows(self, apartment: str) -> bool:
        now = self._clock()
        if self._ids is None or now - self._started_at >= self.refresh or apartment not in self._ids:
            await self._relist(now)
        return self._ids is not None and apartment in self._ids


@dataclass
class _Entry:
    manifest: ApartmentManifest | None
    read_at: float


class ManifestCatalog:
    """Manifests by apartment with a short in-process cache.

    A beacon may name a unit that a rollout put into the manifest after our
    copy was read, so a miss re-reads the manifest, but at most once per
    `min_refresh` per apartment: a page posting unknown labels in a loop
    costs four S3 reads a second, not one per beacon. Unknown apartments are
    cached too, and the cache is bounded (least recently used goes first).
    """

    def __init__(
        self,
        read: Callable[[str], ApartmentManifest | None],
        ttl: float = 5.0,
        min_refresh: float = 0.25,
        max_apartments: int = 1024,
        clock: Callable[[], float] = time.monotonic,
        directory: ApartmentDirectory | None = None,
    ) -> None:
        self._read = read
        self.directory = directory
        self.ttl = ttl
        self.min_refresh = min_refresh
        self.max_apartments = max_apartments
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self.reads = 0

    @classmethod
    def from_store(
        cls, store: ManifestStore, refresh: float = 30.0, min_relist: float = 1.0, **kwargs: Any
    ) -> ManifestCatalog:
        """Reads through `store`, for apartments a directory of the store lists; counted in
        skyline_beacon_storage_reads_total."""

        def read(apartment: str) -> ApartmentManifest | None:
            STORAGE_READS.labels("manifest").inc()
            found = store.read(apartment)
            return found[0] if found else None

        def list_ids() -> list[str]:
            STORAGE_READS.labels("listing").inc()
            return store.list_apartments()

        directory = ApartmentDirectory(list_ids, refresh=refresh, min_relist=min_relist)
        return cls(read, directory=directory, **kwargs)

    async def _load(self, apartment: str, older_than: float) -> ApartmentManifest | None:
        lock = self._locks.setdefault(apartment, asyncio.Lock())
        async with lock:
            entry = self._entries.get(apartment)
            # Someone else refreshed while we waited for the lock.
            if entry is not None and self._clock() - entry.read_at < older_than:
                return entry.manifest
            self.reads += 1
            manifest = await asyncio.to_thread(self._read, apartment)
            self._entries[apartment] = _Entry(manifest, self._clock())
            self._entries.move_to_end(apartment)
            while len(self._entries) > self.max_apartments:
                evicted, _ = self._entries.popitem(last=False)
                self._locks.pop(evicted, None)
            return manifest

    async def get(self, apartment: str) -> ApartmentManifest | None:
        if self.directory is not None and not await self.directory.knows(apartment):
            return None
        entry = self._entries.get(apartment)
        if entry is not None and self._clock() - entry.read_at < self.ttl:
            self._entries.move_to_end(apartment)
            return entry.manifest
        return await self._load(apartment, self.ttl)

    async def unknown(self, beacon: Beacon) -> tuple[str, str] | None:
        problem = unknown_label(await self.get(beacon.apartment), beacon)
        if problem is None:
            return None
        entry = self._entries.get(beacon.apartment)
        if entry is None or self._clock() - entry.read_at < self.min_refresh:
            return problem  # unknown apartment, or read a moment ago
        return unknown_label(await self._load(beacon.apartment, self.min_refresh), beacon)

    async def at_least(self, apartment: str, revision: int | None) -> ApartmentManifest | None:
        """The manifest, re-read (at most once per `min_refresh`) when the cached copy is older
        than `revision`, the one the page loaded from the edge."""
        manifest = await self.get(apartment)
        for _ in range(2):
            if manifest is None or revision is None or _revision(manifest) >= revision:
                break
            entry = self._entries.get(apartment)
            if entry is not None and (wait := entry.read_at + self.min_refresh - self._clock()) > 0:
                await asyncio.sleep(wait)  # read a moment ago: the next read is allowed soon
            manifest = await self._load(apartment, self.min_refresh)
        return manifest


def _revision(manifest: ApartmentManifest) -> int:
    return int(manifest.version) if manifest.version.isdigit() else 0
