"""Which files `skyline manifest gc` may collect: the retention window, with time as a parameter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from skyline.manifest import Apartment, ApartmentManifest, Building, Unit, UnitFile
from skyline.retention import history, key_from_url, named_keys, plan_collection
from skyline.settings import Settings

EDGE = "http://edge/skyline/"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
WEEK = timedelta(days=7)


def key_of(url: str) -> str | None:
    return key_from_url(url, EDGE, "skyline")


def unit(name: str, version: str, *files: str, listed: bool = True) -> Unit:
    entry = f"{EDGE}bundles/{name}/index.{version}.js"
    return Unit(
        id=f"{name}@{version}",
        name=name,
        version=version,
        url=entry,
        checksum="sha384-x",
        size=1,
        files={
            f: UnitFile(url=f"{EDGE}bundles/{name}/{f}", integrity="sha384-y", kind="module") for f in files
        }
        if listed
        else None,
    )


def revision(n: int, at: datetime, *units: Unit, apartment: str = "shop") -> ApartmentManifest:
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


def test_a_revision_stops_being_served_when_the_next_one_is_written() -> None:
    r1, r2, r3 = revision(1, T0), revision(2, T0 + timedelta(hours=1)), revision(3, T0 + timedelta(days=2))
    records = history("shop", [r2, r1, r3], r3)
    assert [(r.revision, r.stopped_at) for r in records] == [
        (1, T0 + timedelta(hours=1)),
        (2, T0 + timedelta(days=2)),
        (3, None),  # the head: served now
    ]
    # A head newer than the stored revisions (a writer died before storing it) is served;
    # without a head, the newest revision is treated as served.
    assert [r.stopped_at for r in history("shop", [r1, r2], r3)][-1] is None
    assert [r.stopped_at for r in history("shop", [r1, r2], None)] == [T0 + timedelta(hours=1), None]


def scenario() -> tuple[list[ApartmentManifest], dict[str, int]]:
    """header 1.0.0 is served (r2, r3), replaced by 1.1.0 at r4 (+1 day); a canary 1.2.0
    (r5, +2 days) is rolled back at r6 (+3 days). The vendor chunk is shared by all."""
    v100 = unit("header", "100", "chunk-A.js", "vendor-V.js")
    v110 = unit("header", "110", "chunk-B.js", "vendor-V.js")
    v120 = unit("header", "120", "chunk-C.js", "vendor-V.js")
    revisions = [
        revision(1, T0),
        revision(2, T0 + timedelta(minutes=1), v100),
        revision(3, T0 + timedelta(minutes=2), v100),
        revision(4, T0 + timedelta(days=1), v110),
        revision(5, T0 + timedelta(days=2), v110, v120),
        revision(6, T0 + timedelta(days=3), v110),
    ]
    stored = {
        k: 10
        for k in [
            "bundles/header/index.100.js",
            "bundles/header/chunk-A.js",
            "bundles/header/index.110.js",
            "bundles/header/chunk-B.js",
            "bundles/header/index.120.js",
            "bundles/header/chunk-C.js",
            "bundles/header/vendor-V.js",
            "bundles/header/logo.svg",  # named by no revision
        ]
    }
    return revisions, stored


def plan_at(now: datetime, retention: timedelta = WEEK) -> list[tuple[str, int, datetime]]:
    revisions, stored = scenario()
    records = history("shop", revisions, revisions[-1])
    plan = plan_collection(records, [], stored, key_of, now, retention)
    return [(c.key, c.revision, c.stopped_at) for c in plan.collect]


def test_nothing_is_collected_within_the_retention_window() -> None:
    assert plan_at(T0 + timedelta(days=7, hours=23)) == []


def test_files_past_retention_name_their_last_revision_and_when_it_stopped() -> None:
    # 1.0.0 stopped being served when r4 was written (+1 day): collectable from +8 days.
    assert plan_at(T0 + timedelta(days=8)) == [
        ("bundles/header/chunk-A.js", 3, T0 + timedelta(days=1)),
        ("bundles/header/index.100.js", 3, T0 + timedelta(days=1)),
    ]
    # The rolled-back canary 1.2.0 stopped at r6 (+3 days): collectable from +10 days.
    # 1.1.0 (the head) and the shared vendor chunk stay; so does what no revision names.
    assert plan_at(T0 + timedelta(days=10)) == [
        ("bundles/header/chunk-A.js", 3, T0 + timedelta(days=1)),
        ("bundles/header/chunk-C.js", 5, T0 + timedelta(days=3)),
        ("bundles/header/index.100.js", 3, T0 + timedelta(days=1)),
        ("bundles/header/index.120.js", 5, T0 + timedelta(days=3)),
    ]


def test_the_retention_setting_is_the_window() -> None:
    assert Settings().retention == timedelta(days=7)
    assert Settings(retention="P1D").retention == timedelta(days=1)
    # With a one-day window, 1.0.0 (stopped at +1 day) goes at +2 days, the canary not yet.
    assert [k for k, _, _ in plan_at(T0 + timedelta(days=2), timedelta(days=1))] == [
        "bundles/header/chunk-A.js",
        "bundles/header/index.100.js",
    ]


def test_a_preview_and_other_apartments_keep_what_they_name() -> None:
    revisions, stored = scenario()
    records = history("shop", revisions, revisions[-1])
    old = unit("header", "100", "chunk-A.js", "vendor-V.js")
    # Another apartment serves header 1.0.0 now: its files stay, whatever shop did.
    other = revision(1, T0, old, apartment="other")
    records += history("other", [other], other)
    now = T0 + timedelta(days=30)
    plan = plan_collection(records, [], stored, key_of, now, WEEK)
    assert [c.key for c in plan.collect] == ["bundles/header/chunk-C.js", "bundles/header/index.120.js"]
    # A blue-green preview naming the canary keeps it too.
    preview = revision(6, T0, unit("header", "120", "chunk-C.js"))
    plan = plan_collection(records, [preview], stored, key_of, now, WEEK)
    assert plan.collect == []
    assert plan.unnamed == 1 and plan.retained == len(stored) - 1


def test_collection_scoped_to_an_apartment_still_respects_every_apartment() -> None:
    revisions, stored = scenario()
    records = history("shop", revisions, revisions[-1])
    now = T0 + timedelta(days=30)
    assert plan_collection(records, [], stored, key_of, now, WEEK, apartments={"other"}).collect == []
    assert len(plan_collection(records, [], stored, key_of, now, WEEK, apartments={"shop"}).collect) == 4


def test_a_unit_without_files_keeps_its_whole_directory() -> None:
    # A served unit that lists no files (published before `files` existed): its chunks
    # are unknown, so nothing beside its entry is collected while it is retained.
    legacy = unit("header", "090", listed=False)
    revisions, stored = scenario()
    head = revision(7, T0 + timedelta(days=4), legacy)
    records = history("shop", [*revisions, head], head)
    assert plan_collection(records, [], stored, key_of, T0 + timedelta(days=30), WEEK).collect == []
    assert named_keys(head, key_of).directories == {"bundles/header/"}


def test_urls_map_to_keys_only_under_the_bucket() -> None:
    assert key_of(f"{EDGE}bundles/h/x.js?v=1") == "bundles/h/x.js"
    assert key_of("https://cdn.example/skyline/bundles/h/x.js") == "bundles/h/x.js"  # edge moved
    assert key_of("https://cdn.example/elsewhere/x.js") is None
    hand = unit("header", "1")
    hand.url = "https://unpkg.example/header.js"
    assert named_keys(revision(1, T0, hand), key_of).keys == frozenset()


def test_every_edge_url_a_unit_carries_is_named() -> None:
    wasm = unit("header", "1", "chunk-A.js")
    wasm.wasm_url = f"{EDGE}bundles/header/core.wasm"
    wasm.metadata.bundle_prefix = "bundles/header/"  # a prefix, not a URL: names nothing
    assert named_keys(revision(1, T0, wasm), key_of).keys == {
        "bundles/header/index.1.js",
        "bundles/header/chunk-A.js",
        "bundles/header/core.wasm",
    }
