"""Retention in real storage (moto over HTTP): gc with `now` as a parameter, and unpublish.

An apartment's history is written with timestamps of our choosing (revision objects
and the head, as the manifest store writes them), naming files of a unit id no other
test uses; gc is scoped to that apartment, so the session's other tests are untouched.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from activities.publish import PublishActivities, UnpublishBundleInput
from adapters.manifest_store import ManifestStore, head_key, preview_key, revision_key
from adapters.retention import StorageCollector
from skyline.manifest import Apartment, ApartmentManifest, Building, Unit, UnitFile
from skyline.settings import Settings
from tests.support.scenario import unique

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=60)
WEEK = timedelta(days=7)


def unit(settings: Settings, name: str, version: str, *files: str) -> Unit:
    url = settings.public_url(f"bundles/{name}/index.{version}.js")
    return Unit(
        id=f"{name}@{version}",
        name=name,
        version=version,
        url=url,
        checksum="sha384-x",
        size=1,
        files={
            "index.js": UnitFile(url=url, integrity="sha384-x", kind="module"),
            **{
                f: UnitFile(
                    url=settings.public_url(f"bundles/{name}/{f}"), integrity="sha384-y", kind="module"
                )
                for f in files
            },
        },
    )


def manifest(apartment: str, n: int, at: datetime, *units: Unit) -> ApartmentManifest:
    building = Building(
        name="Header",
        category="header",
        active_unit=units[0].id if units else None,
        units={u.id: u for u in units},
    )
    return ApartmentManifest(
        version=str(n),
        timestamp=at.isoformat(),
        apartments={apartment: Apartment(name="Shop", buildings={"header": building})},
    )


def put(s3: Any, settings: Settings, key: str, body: bytes) -> None:
    s3.put_object(Bucket=settings.s3_bucket, Key=key, Body=body)


def write_history(s3: Any, settings: Settings) -> tuple[str, str, dict[str, str]]:
    """1.0.0 served from T0, replaced by 1.1.0 at T0+1d; canary 1.2.0 at T0+2d rolled back at
    T0+50d (ten days before now); the vendor chunk is shared by every version."""
    apartment, name = unique("gc"), unique("gcunit")
    v100 = unit(settings, name, "100", "chunk-A.js", "vendor-V.js")
    v110 = unit(settings, name, "110", "chunk-B.js", "vendor-V.js")
    v120 = unit(settings, name, "120", "chunk-C.js", "vendor-V.js")
    history = [
        manifest(apartment, 1, T0, v100),
        manifest(apartment, 2, T0 + timedelta(days=1), v110),
        manifest(apartment, 3, T0 + timedelta(days=2), v110, v120),
        manifest(apartment, 4, T0 + timedelta(days=50), v110),
    ]
    for m in history:
        put(s3, settings, revision_key(apartment, m.revision), m.to_json_bytes())
    put(s3, settings, head_key(apartment), history[-1].to_json_bytes())
    keys = {
        f: f"bundles/{name}/{f}"
        for f in [
            "index.100.js",
            "chunk-A.js",
            "index.110.js",
            "chunk-B.js",
            "index.120.js",
            "chunk-C.js",
            "vendor-V.js",
            "logo.svg",
        ]
    }
    for key in keys.values():
        put(s3, settings, key, b"x" * 10)
    return apartment, name, keys


def present(s3: Any, settings: Settings, prefix: str) -> set[str]:
    listed = s3.list_objects_v2(Bucket=settings.s3_bucket, Prefix=prefix).get("Contents", [])
    return {item["Key"].removeprefix(prefix) for item in listed}


def test_gc_deletes_exactly_the_files_past_retention(s3: Any, settings: Settings) -> None:
    apartment, name, keys = write_history(s3, settings)
    collector = StorageCollector(ManifestStore(s3, settings.s3_bucket), settings.public_url(""))
    scope = {apartment}

    def listed(now: datetime) -> list[tuple[str, int, datetime]]:
        plan = collector.collect(now, WEEK, dry_run=True, apartments=scope)
        assert plan.deleted == 0 and plan.dry_run
        return [(c.key.removeprefix(f"bundles/{name}/"), c.revision, c.stopped_at) for c in plan.collect]

    # 1.0.0 stopped being served at T0+1d: within retention until T0+8d.
    assert listed(T0 + timedelta(days=7)) == []
    assert listed(T0 + timedelta(days=8, seconds=1)) == [
        ("chunk-A.js", 1, T0 + timedelta(days=1)),
        ("index.100.js", 1, T0 + timedelta(days=1)),
    ]
    # The canary 1.2.0 stopped at T0+50d: listed from T0+57d, never the head's 1.1.0,
    # the shared vendor chunk, or a file no revision names.
    late = T0 + timedelta(days=57, seconds=1)
    assert [k for k, _, _ in listed(late)] == ["chunk-A.js", "chunk-C.js", "index.100.js", "index.120.js"]
    # A blue-green preview naming the canary keeps its files.
    preview = manifest(apartment, 4, T0, unit(settings, name, "120", "chunk-C.js"))
    put(s3, settings, preview_key(apartment), preview.to_json_bytes())
    assert [k for k, _, _ in listed(late)] == ["chunk-A.js", "index.100.js"]
    s3.delete_object(Bucket=settings.s3_bucket, Key=preview_key(apartment))

    # The real run deletes exactly what the dry run listed, and nothing else.
    before = present(s3, settings, f"bundles/{name}/")
    done = collector.collect(late, WEEK, dry_run=False, apartments=scope)
    assert done.deleted == 4 and not done.dry_run
    gone = {"chunk-A.js", "chunk-C.js", "index.100.js", "index.120.js"}
    assert present(s3, settings, f"bundles/{name}/") == before - gone
    assert {"index.110.js", "chunk-B.js", "vendor-V.js", "logo.svg"} <= present(
        s3, settings, f"bundles/{name}/"
    )
    # Revisions themselves are history: never collected.
    assert len(present(s3, settings, f"manifests/{apartment}/revisions/")) == 4
    assert collector.collect(late, WEEK, dry_run=True, apartments=scope).collect == []


def test_unpublish_keeps_a_shared_chunk_a_served_revision_names(s3: Any, settings: Settings) -> None:
    """A canary that never reached traffic takes back the files it uploaded, except one that
    another rollout of the same unit (which skipped uploading it) is served with."""
    apartment, name = unique("gcpub"), unique("gcpubunit")
    started = datetime.now(UTC)
    ours = [f"bundles/{name}/index.200.js", f"bundles/{name}/chunk-S.js"]
    for key in ours:
        put(s3, settings, key, b"y")
    # Another building's rollout of the same unit id, served with the shared chunk only.
    other = unit(settings, name, "201", "chunk-S.js")
    served = manifest(apartment, 1, datetime.now(UTC), other)
    put(s3, settings, revision_key(apartment, 1), served.to_json_bytes())
    put(s3, settings, head_key(apartment), served.to_json_bytes())
    publisher = PublishActivities(settings, s3, httpx.Client(timeout=10))
    result = publisher.unpublish(
        UnpublishBundleInput(prefix=f"bundles/{name}/", since=started, keys=ours, entry_key=ours[0])
    )
    assert result.deleted == 0 and result.kept_reason == f"referenced by {head_key(apartment)}"
    assert present(s3, settings, f"bundles/{name}/") == {"index.200.js", "chunk-S.js"}
