"""The manifest activities' rules (activities/manifest_rules.py) and the last-known-good search
(skyline/manifest_diff.py), on in-memory histories built with the real `apply_mutation`.

The same rules run inside the real activities on the embedded stack
(tests/activities/test_real_restore_rules.py) and inside the workflow layer's
stand-ins (tests/workflows/world.py); these tests pin them down without either,
so `make mutants` can check them.
"""

from __future__ import annotations

import pytest

from activities.manifest_rules import (
    RETRY_LOOKBACK,
    MissingRevision,
    RestoreFromRevisionInput,
    fleet_restore,
    holds_unit,
    restore_kept,
    retry_base_hint,
    starting_point,
)
from skyline.manifest import Apartment, ApartmentManifest, Building, ManifestChange, RolloutConfig, Unit
from skyline.manifest_diff import last_known_good
from skyline.manifest_ops import (
    CreateApartment,
    ManifestConflict,
    Mutation,
    PromoteUnit,
    RestoreBuilding,
    SetCanary,
    apply_mutation,
)

APARTMENT = "shop"
FLEET_UNIT = "header@5.0.0"


def unit(version: str, name: str = "header") -> Unit:
    return Unit(
        id=f"{name}@{version}",
        name=name,
        version=version,
        url=f"https://cdn.example/{name}/{version}/index.js",
        checksum="sha384-x",
        size=1,
    )


def change(what: str) -> ManifestChange:
    return ManifestChange(id=what, actor="tests", reason=what)


class History:
    """An apartment's revisions, oldest first; revision n is `revisions[n - 1]`."""

    def __init__(self) -> None:
        stable = unit("1.3.0")
        header = Building(name="Header", category="header", active_unit=stable.id, units={stable.id: stable})
        main = Building(name="Main", category="main")
        first = apply_mutation(
            None,
            APARTMENT,
            CreateApartment(apartment=Apartment(name="Shop", buildings={"header": header, "main": main})),
            change("create"),
            "t0",
        )
        self.revisions = [first]

    def write(self, mutation: Mutation) -> int:
        nxt = apply_mutation(self.head, APARTMENT, mutation, change(f"w{len(self.revisions)}"), "t")
        self.revisions.append(nxt)
        return nxt.revision

    @property
    def head(self) -> ApartmentManifest:
        return self.revisions[-1]

    def read(self, revision: int) -> ApartmentManifest | None:
        return self.revisions[revision - 1] if 1 <= revision <= len(self.revisions) else None

    def header(self, revision: int | None = None) -> Building:
        manifest = self.head if revision is None else self.read(revision)
        assert manifest is not None
        return manifest.apartment(APARTMENT).buildings["header"]

    def fleet_went_out(self) -> int:
        """A fleet's child rollout: canary at 10 % (its first write), 100 %, promote. Returns the
        revision before it."""
        before = self.head.revision
        canary = unit("5.0.0")
        self.write(SetCanary(building="header", unit=canary, rollout=RolloutConfig(percentage=10)))
        self.write(SetCanary(building="header", unit=canary, rollout=RolloutConfig(percentage=100)))
        self.write(PromoteUnit(building="header", unit_id=canary.id))
        return before


def restore_input(revision: int, only_if_active: str | None = FLEET_UNIT) -> RestoreFromRevisionInput:
    return RestoreFromRevisionInput(
        apartment=APARTMENT,
        building="header",
        revision=revision,
        change=change("restore"),
        only_if_active=only_if_active,
    )


# ----- where a rollout starts ---------------------------------------------------------------


def test_a_rollout_starts_from_the_building_as_it_is_and_the_revision_before_its_first_write() -> None:
    """Stand-in twin: tests/workflows/world.py prepare_rollout; real twin:
    tests/activities/test_real_restore_rules.py::test_rollback_restores_the_last_known_good_building_..."""
    history = History()
    history.write(
        SetCanary(building="main", unit=unit("9.9.9", "main"), rollout=RolloutConfig(percentage=50))
    )
    building = history.header()
    start = starting_point(building, history.head.revision)
    assert start.base_revision == 2
    assert start.snapshot == building
    assert start.baseline_unit == "header@1.3.0"
    assert start.baseline_version == "1.3.0"


def test_a_building_without_an_active_unit_has_no_baseline() -> None:
    empty = Building(name="Main", category="main")
    start = starting_point(empty, 7)
    assert (start.base_revision, start.baseline_unit, start.baseline_version) == (7, None, None)
    assert start.snapshot == empty


def test_an_active_unit_missing_from_the_units_gives_no_baseline_version() -> None:
    dangling = Building(name="Header", category="header", active_unit="header@0.1.0")
    start = starting_point(dangling, 3)
    assert start.baseline_unit == "header@0.1.0" and start.baseline_version is None


# ----- a fleet's restore --------------------------------------------------------------------


def test_a_fleet_restore_reads_the_revision_before_the_fleet_not_its_first_canary_write() -> None:
    """Stand-in twin: tests/workflows/test_fast_fleet.py::test_rollback_all_restores_every_done_apartment_
    exactly; real twin: tests/activities/test_real_restore_rules.py::test_fleet_restore_puts_the_building_
    back_as_it_was_before_the_fleet."""
    history = History()
    base = history.fleet_went_out()
    reads: list[int] = []

    def read(revision: int) -> ApartmentManifest | None:
        reads.append(revision)
        return history.read(revision)

    mutation = fleet_restore(restore_input(base), read)
    assert reads == [base]
    assert mutation == RestoreBuilding(
        building="header", snapshot=history.header(base), only_if_active=FLEET_UNIT
    )
    assert FLEET_UNIT not in mutation.snapshot.units  # the first canary write (base + 1) holds it
    assert mutation.snapshot != history.header(base + 1)
    restored = apply_mutation(history.head, APARTMENT, mutation, change("restore"), "t")
    assert restored.apartment(APARTMENT).buildings["header"] == history.header(base)
    assert (
        restored.apartment(APARTMENT).buildings["main"] == history.head.apartment(APARTMENT).buildings["main"]
    )


def test_a_fleet_restore_restores_the_named_building_only() -> None:
    history = History()
    history.write(
        SetCanary(building="main", unit=unit("2.0.0", "main"), rollout=RolloutConfig(percentage=100))
    )
    history.write(PromoteUnit(building="main", unit_id="main@2.0.0"))
    inp = RestoreFromRevisionInput(
        apartment=APARTMENT, building="main", revision=1, change=change("r"), only_if_active="main@2.0.0"
    )
    mutation = fleet_restore(inp, history.read)
    assert mutation.building == "main"
    assert mutation.snapshot == history.read(1).apartment(APARTMENT).buildings["main"]  # type: ignore[union-attr]


def test_a_fleet_restore_carries_the_condition_so_a_later_hotfix_stays() -> None:
    """Stand-in twin: tests/workflows/test_fast_fleet.py::test_a_fleet_rollback_never_reverts_someone_elses_
    hotfix; real twin: tests/activities/test_real_restore_rules.py::test_fleet_restore_keeps_a_later_hotfix_
    by_another_rollout."""
    history = History()
    base = history.fleet_went_out()
    hotfix = unit("5.0.1")
    history.write(SetCanary(building="header", unit=hotfix, rollout=RolloutConfig(percentage=100)))
    history.write(PromoteUnit(building="header", unit_id=hotfix.id))
    mutation = fleet_restore(restore_input(base), history.read)
    assert mutation.only_if_active == FLEET_UNIT
    with pytest.raises(ManifestConflict, match="5.0.1"):
        apply_mutation(history.head, APARTMENT, mutation, change("restore"), "t")


def test_an_unconditional_restore_stays_unconditional() -> None:
    history = History()
    base = history.fleet_went_out()
    assert fleet_restore(restore_input(base, None), history.read).only_if_active is None


def test_a_restore_from_a_missing_revision_is_refused_with_its_name() -> None:
    history = History()
    with pytest.raises(MissingRevision) as raised:
        fleet_restore(restore_input(9), history.read)
    assert str(raised.value) == "apartment 'shop' has no revision 9"


def test_a_refused_conditional_restore_is_kept_at_the_head_and_says_why() -> None:
    history = History()
    history.fleet_went_out()
    kept = restore_kept("building 'header' no longer holds header@5.0.0 alone", history.head)
    assert kept.revision == history.head.revision == 4
    assert kept.applied is False and kept.restored is False
    assert kept.reason == "building 'header' no longer holds header@5.0.0 alone"
    gone = restore_kept("gone", None)
    assert (gone.revision, gone.applied, gone.restored, gone.reason) == (0, False, False, "gone")


# ----- where a retried write looks for itself ----------------------------------------------


def never_read() -> int | None:
    raise AssertionError("the head must not be read")


def test_a_heartbeat_base_wins_and_storage_is_not_read() -> None:
    assert retry_base_hint([17], 1, never_read) == 17
    assert retry_base_hint(["23"], 3, never_read) == 23


def test_a_first_attempt_without_a_heartbeat_looks_nowhere() -> None:
    assert retry_base_hint([], 1, never_read) is None
    assert retry_base_hint((), 0, never_read) is None


def test_a_retry_without_a_heartbeat_looks_back_from_the_head() -> None:
    assert RETRY_LOOKBACK == 50
    assert retry_base_hint([], 2, lambda: 120) == 70
    assert retry_base_hint([], 5, lambda: 50) == 0
    assert retry_base_hint([], 2, lambda: 51) == 1
    assert retry_base_hint([], 2, lambda: 3) == 0  # never below revision 0
    assert retry_base_hint([], 2, lambda: None) is None  # no apartment (yet)


# ----- which apartments a fleet takes -------------------------------------------------------


def test_a_fleet_takes_a_building_that_has_a_unit_of_that_name() -> None:
    history = History()
    assert holds_unit(history.header(), "header")
    assert not holds_unit(history.header(), "footer")
    assert not holds_unit(Building(name="Main", category="main"), "header")
    assert not holds_unit(None, "header")
    two = Building(name="H", category="header", units={"a@1": unit("1", "a"), "header@2": unit("2")})
    assert holds_unit(two, "header")  # any unit, not only the first


# ----- last-known-good ----------------------------------------------------------------------


def test_last_known_good_is_the_newest_settled_revision_and_the_search_stops_there() -> None:
    history = History()  # 1 settled
    history.write(SetCanary(building="header", unit=unit("2.0.0"), rollout=RolloutConfig(percentage=10)))  # 2
    history.write(PromoteUnit(building="header", unit_id="header@2.0.0"))  # 3 settled
    history.write(SetCanary(building="header", unit=unit("3.0.0"), rollout=RolloutConfig(percentage=10)))  # 4
    reads: list[int] = []

    def read(revision: int) -> ApartmentManifest | None:
        reads.append(revision)
        return history.read(revision)

    found = last_known_good([1, 2, 3, 4], read)
    assert found is not None and found.revision == 3
    assert reads == [4, 3]
    assert last_known_good([1, 2, 3, 4], history.read, before=2) == history.read(1)
    assert last_known_good([1, 2, 3, 4], history.read, before=3) == history.read(3)
    assert last_known_good([2, 4], history.read) is None
    assert last_known_good([], history.read) is None


def test_last_known_good_skips_a_revision_storage_no_longer_has() -> None:
    history = History()
    history.write(SetCanary(building="header", unit=unit("2.0.0"), rollout=RolloutConfig(percentage=10)))
    history.write(PromoteUnit(building="header", unit_id="header@2.0.0"))
    found = last_known_good([1, 2, 3], lambda r: None if r == 3 else history.read(r))
    assert found is not None and found.revision == 1
