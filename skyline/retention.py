"""Skew protection in storage: which published files may be collected, and why (pure).

A page keeps the manifest revision it started with for every later load
(loader/skyline-loader.js, "skew protection"), so a file a revision names must
stay readable for as long as a page that read that revision may still ask for
it. Revision N of an apartment is served from the moment it is written until
revision N+1 replaces it at the head; the head is served now. A file is
*retained* while some revision that names it is the head (or the blue-green
preview) of an apartment, or stopped being served less than `retention` ago.
Only a file that every naming revision has outlived by `retention` may go.

"Names" is literal: the `url`, `wasm_url` and every `files[*].url` (any edge
URL of a key under bundles/ the unit carries) of every unit in the revision,
the units no page loads any more (`deprecated`, kept so switching back is one
manifest write) included. A file no revision names
(source maps and images the manifest does not list, a bundle being published
right now) is never collected here. A unit without `files` (published before
they existed, or hand-written) names only its entry, while its chunks live
beside it: its whole directory is retained with it.

`plan_collection` is a pure function of what storage holds and of `now`, so the
window is tested without clocks (tests/skyline/test_retention.py); the S3 side
is adapters/retention.py.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field

from skyline.manifest import ApartmentManifest

BUNDLES = "bundles/"


@dataclass(frozen=True)
class RevisionRecord:
    """One stored revision of an apartment, and when it stopped being served (None: it is the head)."""

    apartment: str
    revision: int
    manifest: ApartmentManifest
    stopped_at: datetime | None


def written_at(manifest: ApartmentManifest, fallback: datetime | None = None) -> datetime | None:
    """The revision's own timestamp (aware, UTC), or `fallback` when it does not parse."""
    try:
        stamp = datetime.fromisoformat(manifest.timestamp.replace("Z", "+00:00"))
    except ValueError:
        return fallback
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def history(
    apartment: str, revisions: list[ApartmentManifest], head: ApartmentManifest | None
) -> list[RevisionRecord]:
    """Each revision with the time it stopped being served: when the next revision was written.

    The head (and, without a head, the newest revision: conservatively) is served now.
    A revision whose successor carries no readable timestamp is treated as served now.
    """
    ordered = sorted({m.revision: m for m in revisions}.values(), key=lambda m: m.revision)
    if head is not None and (not ordered or ordered[-1].revision < head.revision):
        ordered.append(head)
    current = head.revision if head is not None else (ordered[-1].revision if ordered else None)
    out: list[RevisionRecord] = []
    for i, manifest in enumerate(ordered):
        nxt = ordered[i + 1] if i + 1 < len(ordered) else None
        stopped = None
        if manifest.revision != current and nxt is not None:
            stopped = written_at(nxt)
        out.append(RevisionRecord(apartment, manifest.revision, manifest, stopped))
    return out


@dataclass(frozen=True)
class Named:
    """What one manifest names in storage: keys, and directories retained whole."""

    keys: frozenset[str]
    directories: frozenset[str]


def _strings(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def named_keys(manifest: ApartmentManifest, key_of: Callable[[str], str | None]) -> Named:
    """Storage keys (under bundles/) the manifest's units name, via `key_of(url)`."""
    keys: set[str] = set()
    directories: set[str] = set()
    for apartment in manifest.apartments.values():
        for building in apartment.buildings.values():
            for unit in building.units.values():
                # Every string of the unit (url, wasm_url, files[*].url, and any URL an optional
                # field added later carries) that is an edge URL of a key under bundles/.
                urls = [u for u in _strings(unit.model_dump(mode="json", exclude={"rollout"})) if "/" in u]
                found = [k for k in (key_of(u) for u in urls) if k is not None and k.startswith(BUNDLES)]
                keys.update(found)
                entry = key_of(unit.url)
                if not unit.files and entry is not None and entry.startswith(BUNDLES):
                    directories.add(posixpath.dirname(entry) + "/")
    return Named(frozenset(keys), frozenset(directories))


class Collectable(BaseModel):
    """A file past retention: the revision that named it last, and when that one stopped being served."""

    key: str
    size: int = Field(ge=0)
    apartment: str
    revision: int
    stopped_at: datetime
    retained_until: datetime


class CollectionPlan(BaseModel):
    now: datetime
    retention_seconds: float
    collect: list[Collectable]
    retained: int = Field(description="files a served revision, or one within retention, names")
    unnamed: int = Field(description="files under bundles/ no revision names: never collected here")
    revisions: int = Field(description="revisions read")
    bytes: int = Field(description="bytes the collected files take")


@dataclass
class _Last:
    record: RevisionRecord
    until: datetime


@dataclass
class _Scan:
    live_keys: set[str] = field(default_factory=set)
    live_dirs: set[str] = field(default_factory=set)
    expired: dict[str, _Last] = field(default_factory=dict)


def plan_collection(
    records: Iterable[RevisionRecord],
    live: Iterable[ApartmentManifest],
    stored: dict[str, int],
    key_of: Callable[[str], str | None],
    now: datetime,
    retention: timedelta,
    apartments: set[str] | None = None,
) -> CollectionPlan:
    """What may be deleted at `now`.

    `records`: every revision of every apartment (all of them, also with `apartments`:
    bundles are shared per unit across apartments). `live`: documents served now besides
    the heads (blue-green previews). `stored`: key -> size of what storage holds under
    bundles/. `apartments`: collect only files that these apartments' revisions named.
    """
    scan = _Scan()
    count = 0
    for record in records:
        count += 1
        named = named_keys(record.manifest, key_of)
        if record.stopped_at is None or record.stopped_at + retention > now:
            scan.live_keys.update(named.keys)
            scan.live_dirs.update(named.directories)
            continue
        if apartments is not None and record.apartment not in apartments:
            continue
        until = record.stopped_at + retention
        for key in named.keys:
            last = scan.expired.get(key)
            if last is None or last.until < until:
                scan.expired[key] = _Last(record, until)
    for manifest in live:
        named = named_keys(manifest, key_of)
        scan.live_keys.update(named.keys)
        scan.live_dirs.update(named.directories)

    def retained(key: str) -> bool:
        return key in scan.live_keys or any(key.startswith(d) for d in scan.live_dirs)

    collect: list[Collectable] = []
    kept = 0
    for key in sorted(stored):
        if retained(key):
            kept += 1
            continue
        last = scan.expired.get(key)
        if last is None:
            continue
        assert last.record.stopped_at is not None
        collect.append(
            Collectable(
                key=key,
                size=stored[key],
                apartment=last.record.apartment,
                revision=last.record.revision,
                stopped_at=last.record.stopped_at,
                retained_until=last.until,
            )
        )
    unnamed = len(stored) - kept - len(collect)
    return CollectionPlan(
        now=now,
        retention_seconds=retention.total_seconds(),
        collect=collect,
        retained=kept,
        unnamed=unnamed,
        revisions=count,
        bytes=sum(c.size for c in collect),
    )


def key_from_url(url: str, public_prefix: str, bucket: str) -> str | None:
    """The storage key an edge URL names: after `public_prefix` (settings.public_url("")),
    or after `/<bucket>/` in its path (an edge address that changed since); None otherwise."""
    if url.startswith(public_prefix):
        return url[len(public_prefix) :].split("?", 1)[0].split("#", 1)[0]
    marker = f"/{bucket}/"
    path = url.split("://", 1)[-1]
    slash = path.find("/")
    if slash < 0:
        return None
    path = path[slash:].split("?", 1)[0].split("#", 1)[0]
    if not path.startswith(marker):
        return None
    return path[len(marker) :]
