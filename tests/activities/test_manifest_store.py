"""The manifest store against a real S3 API server (moto over HTTP)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from adapters.manifest_store import ManifestStore, head_key, revision_key
from skyline.manifest import Apartment, Building, ManifestChange, RolloutConfig, Unit
from skyline.manifest_ops import AddBuilding, CreateApartment, ManifestConflict, PromoteUnit, SetCanary
from skyline.settings import Settings
from tests.support.scenario import unique

BUILDINGS = 12
CHANGES_EACH = 4


def unit(building: str, n: int) -> Unit:
    return Unit(
        id=f"{building}@1.0.{n}", name=building, version=f"1.0.{n}", url="u", checksum="sha384-x", size=1
    )


def canary(building: str) -> SetCanary:
    """The first canary of a building at 5 %."""
    return SetCanary(building=building, unit=unit(building, 1), rollout=RolloutConfig(percentage=5))


def create(store: ManifestStore, buildings: list[str]) -> str:
    apartment = unique("apt")
    apt = Apartment(name="A", buildings={b: Building(name=b, category="main") for b in buildings})
    store.apply(apartment, CreateApartment(apartment=apt), ManifestChange(id="c", actor="t", reason="r"))
    return apartment


def change(cid: str) -> ManifestChange:
    return ManifestChange(id=cid, actor="tests", reason="test")


def test_concurrent_writers_on_different_buildings_lose_nothing(s3: Any, settings: Settings) -> None:
    store = ManifestStore(s3, settings.s3_bucket)
    buildings = [f"b{i}" for i in range(BUILDINGS)]
    apartment = create(store, buildings)

    def writer(building: str) -> list[int]:
        # one client per thread, as separate workers would have
        mine = ManifestStore(s3, settings.s3_bucket)
        revisions = []
        for n in range(CHANGES_EACH):
            manifest, applied = mine.apply(
                apartment,
                SetCanary(building=building, unit=unit(building, n), rollout=RolloutConfig(percentage=5)),
                change(f"{building}-{n}"),
            )
            assert applied
            revisions.append(manifest.revision)
        return revisions

    with ThreadPoolExecutor(max_workers=BUILDINGS) as pool:
        results = list(pool.map(writer, buildings))

    final, _ = store.read(apartment) or (None, None)
    assert final is not None
    total = BUILDINGS * CHANGES_EACH
    assert final.revision == 1 + total
    for building in buildings:
        units = final.apartments[apartment].buildings[building].units
        assert set(units) == {f"{building}@1.0.{n}" for n in range(CHANGES_EACH)}
    # every revision stored exactly once, each change in exactly one revision
    assert store.list_revisions(apartment) == list(range(1, total + 2))
    seen = [store.read_revision(apartment, r) for r in range(2, total + 2)]
    ids = [m.change.id for m in seen if m and m.change]
    assert sorted(ids) == sorted(f"{b}-{n}" for b in buildings for n in range(CHANGES_EACH))
    assert sorted(r for rs in results for r in rs) == list(range(2, total + 2))


def test_retried_change_is_applied_once(s3: Any, settings: Settings) -> None:
    store = ManifestStore(s3, settings.s3_bucket)
    apartment = create(store, ["x", "y"])
    first, applied = store.apply(apartment, canary("x"), change("a"))
    assert applied and first.revision == 2
    again, applied_again = store.apply(apartment, canary("x"), change("a"))
    assert not applied_again and again.revision == 2
    # another writer moves the head on; a retry that knows its base still finds its write
    store.apply(apartment, canary("y"), change("b"))
    late, applied_late = store.apply(
        apartment,
        canary("x"),
        change("a"),
        base_hint=1,
    )
    assert not applied_late and late.revision == 2
    assert store.list_revisions(apartment) == [1, 2, 3]


def test_the_next_writer_repairs_the_revision_a_dead_writer_left_out(s3: Any, settings: Settings) -> None:
    """A writer that died between moving the head and storing its revision leaves a gap; the next fills it."""
    store = ManifestStore(s3, settings.s3_bucket)
    apartment = create(store, ["x"])
    store.apply(apartment, canary("x"), change("a"))
    s3.delete_object(Bucket=settings.s3_bucket, Key=revision_key(apartment, 2))  # as if it died there
    assert store.list_revisions(apartment) == [1]
    # the next writer is another process: what the dead one remembered died with it
    nxt = ManifestStore(s3, settings.s3_bucket)
    nxt.apply(apartment, PromoteUnit(building="x", unit_id="x@1.0.1"), change("b"))
    assert store.list_revisions(apartment) == [1, 2, 3]
    repaired = store.read_revision(apartment, 2)
    assert repaired is not None and repaired.change is not None and repaired.change.id == "a"


def test_a_write_from_a_stale_remembered_head_loses_and_refuses_nothing(s3: Any, settings: Settings) -> None:
    """A store writes from the head it last read or wrote; another process's writes in between
    make that head stale. The conditional write then loses, and the change is decided again on
    a fresh read: nothing the other wrote is lost, and a structure change that names the real
    current revision is not refused as stale."""
    mine = ManifestStore(s3, settings.s3_bucket)
    apartment = create(mine, ["x", "y"])  # remembers revision 1
    other = ManifestStore(s3, settings.s3_bucket)
    other.apply(apartment, canary("y"), change("o1"))
    written, applied = mine.apply(apartment, canary("x"), change("m1"))
    assert applied and written.revision == 3
    assert set(written.apartments[apartment].buildings["y"].units) == {"y@1.0.1"}  # the other's write kept
    other.apply(apartment, PromoteUnit(building="y", unit_id="y@1.0.1"), change("o2"))  # revision 4
    grown, _ = mine.apply(
        apartment,
        AddBuilding(building="z", spec=Building(name="z", category="main"), if_revision=4),
        change("m2"),
    )
    assert grown.revision == 5 and "z" in grown.apartments[apartment].buildings
    assert mine.list_revisions(apartment) == [1, 2, 3, 4, 5]
    # and a retried change is still found, not applied twice, from a stale head
    other.apply(apartment, PromoteUnit(building="x", unit_id="x@1.0.1"), change("o3"))  # revision 6
    again, applied_again = mine.apply(
        apartment,
        AddBuilding(building="z", spec=Building(name="z", category="main")),
        change("m2"),
        base_hint=4,
    )
    assert not applied_again and again.revision == 5


def test_a_write_from_the_remembered_head_is_two_requests(s3: Any, settings: Settings) -> None:
    """The common path (this process wrote the head last): the conditional head write and the
    revision object, no read and no history-gap check (a step's storage requests halved)."""
    store = ManifestStore(s3, settings.s3_bucket)
    apartment = create(store, ["x"])
    store.apply(apartment, canary("x"), change("a"))
    sent: list[str] = []

    def count(model: Any, **_: Any) -> None:
        sent.append(model.name)

    s3.meta.events.register("before-call.s3", count)
    try:
        store.apply(apartment, PromoteUnit(building="x", unit_id="x@1.0.1"), change("b"))
    finally:
        s3.meta.events.unregister("before-call.s3", count)
    assert sent == ["PutObject", "PutObject"]
    assert store.list_revisions(apartment) == [1, 2, 3]


def test_head_is_served_with_short_cache_and_revisions_are_immutable(s3: Any, settings: Settings) -> None:
    store = ManifestStore(s3, settings.s3_bucket)
    apartment = create(store, ["x"])
    head = s3.get_object(Bucket=settings.s3_bucket, Key=head_key(apartment))
    assert head["CacheControl"] == "public, max-age=5"
    assert head["Metadata"]["skyline-revision"] == "1"
    with pytest.raises(ManifestConflict, match="already exists"):
        create_again = Apartment(name="A", buildings={"x": Building(name="x", category="main")})
        store.apply(apartment, CreateApartment(apartment=create_again), change("again"))


def test_a_cleared_preview_serves_production_and_says_there_is_no_candidate(
    s3: Any, settings: Settings
) -> None:
    store = ManifestStore(s3, settings.s3_bucket)
    apartment = create(store, ["header"])
    canary = SetCanary(building="header", unit=unit("header", 1), rollout=RolloutConfig(percentage=0))
    store.apply(apartment, canary, change("staged"))
    store.write_preview(apartment, PromoteUnit(building="header", unit_id="header@1.0.1"), change("mine"))
    # another rollout's preview is never cleared by this one
    assert store.clear_preview(apartment, "someone-else", change("x")) is None
    cleared = store.clear_preview(
        apartment, "mine", ManifestChange(id="c2", actor="skyline", reason="no candidate: rolled back")
    )
    head = store.read(apartment)
    assert cleared is not None and head is not None
    assert cleared.apartments == head[0].apartments and cleared.revision == head[0].revision
    assert cleared.change is not None and cleared.change.reason == "no candidate: rolled back"
    # a retry finds it cleared; nobody else's clearing replaces it
    assert store.clear_preview(apartment, "mine", change("c2")) == cleared
    assert store.clear_preview(apartment, "mine", change("again")) is None
