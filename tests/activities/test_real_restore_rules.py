"""The rules the fast layer's stand-ins encode, run against the REAL activities (issue 28, 1-2).

tests/workflows/world.py stands in for the manifest activities so the workflow
tests run in milliseconds; a rule that lives in the real activity (which revision
it reads, whether it honours "only if still active", what the write leaves in
storage) is therefore untested there. Each test below runs the activity the worker
registers, in Temporal's ActivityEnvironment, against the session's embedded S3
server and edge, and names the fast test whose stand-in it mirrors.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from activities.cdn import CdnActivities
from activities.emergency import EmergencyActivities
from activities.manifests import (
    ActiveUnitsInput,
    ApplyManifestChangeInput,
    ManifestActivities,
    PrepareRolloutInput,
    RestoreFromRevisionInput,
)
from adapters.cdn import make_cdn_provider
from adapters.manifest_store import ManifestStore
from skyline.manifest import Apartment, Building, ManifestChange, RolloutConfig, Unit
from skyline.manifest_ops import CreateApartment, PromoteUnit, RestoreBuilding, SetCanary
from skyline.settings import Settings
from tests.support.scenario import unique

FLEET_UNIT = "header@5.0.0"


def unit(version: str) -> Unit:
    return Unit(
        id=f"header@{version}",
        name="header",
        version=version,
        url=f"https://cdn.example/header/{version}/index.js",
        checksum="sha384-x",
        size=1,
    )


def change(what: str) -> ManifestChange:
    return ManifestChange(id=unique(what), actor="tests", reason=what)


@pytest.fixture()
def manifests(s3: Any, settings: Settings) -> ManifestActivities:
    return ManifestActivities(s3, settings.s3_bucket)


def create(store: ManifestStore, active: str = "1.3.0") -> str:
    """An apartment whose header runs `active` (revision 1), plus a main building."""
    apartment = unique("real")
    stable = unit(active)
    header = Building(name="Header", category="header", active_unit=stable.id, units={stable.id: stable})
    main = Building(name="Main", category="main")
    store.apply(
        apartment,
        CreateApartment(apartment=Apartment(name="Shop", buildings={"header": header, "main": main})),
        change("create"),
    )
    return apartment


def write(store: ManifestStore, apartment: str, mutation: Any, what: str = "write") -> int:
    manifest, applied = store.apply(apartment, mutation, change(what))
    assert applied
    return manifest.revision


def fleet_went_out(store: ManifestStore, apartment: str) -> int:
    """What a fleet's child rollout writes: canary at 10 % (its first write), 100 %, promote.
    Returns the revision before the fleet (the child's base revision)."""
    before = store.read(apartment)
    assert before is not None
    canary = unit("5.0.0")
    write(store, apartment, SetCanary(building="header", unit=canary, rollout=RolloutConfig(percentage=10)))
    write(store, apartment, SetCanary(building="header", unit=canary, rollout=RolloutConfig(percentage=100)))
    write(store, apartment, PromoteUnit(building="header", unit_id=canary.id))
    return before[0].revision


def header(store: ManifestStore, apartment: str) -> Building:
    found = store.read(apartment)
    assert found is not None
    return found[0].apartment(apartment).buildings["header"]


def test_fleet_restore_puts_the_building_back_as_it_was_before_the_fleet(
    manifests: ManifestActivities,
) -> None:
    """Real-activity twin of tests/workflows/test_fast_fleet.py::
    test_rollback_all_restores_every_done_apartment_exactly (stand-in: World.restore_building_from_revision
    reads `inp.revision`). Reading the first canary write instead would leave 5.0.0 in the building."""
    store = manifests.store
    apartment = create(store)
    base = fleet_went_out(store, apartment)
    before = store.read_revision(apartment, base)
    assert before is not None
    result = ActivityEnvironment().run(
        manifests.restore_building_from_revision,
        RestoreFromRevisionInput(
            apartment=apartment,
            building="header",
            revision=base,
            change=change("restore"),
            only_if_active=FLEET_UNIT,
        ),
    )
    assert result.restored and result.applied
    # exactly the building of the revision before the fleet: no canary, no deprecated 5.0.0
    assert header(store, apartment) == before.apartment(apartment).buildings["header"]
    assert FLEET_UNIT not in header(store, apartment).units
    found = store.read(apartment)
    assert found is not None and found[0].revision == result.revision == base + 4


def test_fleet_restore_keeps_a_later_hotfix_by_another_rollout(manifests: ManifestActivities) -> None:
    """Real-activity twin of tests/workflows/test_fast_fleet.py::
    test_a_fleet_rollback_never_reverts_someone_elses_hotfix (stand-in: World.restore_building_from_revision
    passes `only_if_active` to RestoreBuilding). Ignoring the condition reverts 5.0.1 to 1.3.0."""
    store = manifests.store
    apartment = create(store)
    base = fleet_went_out(store, apartment)
    hotfix = unit("5.0.1")
    write(store, apartment, SetCanary(building="header", unit=hotfix, rollout=RolloutConfig(percentage=100)))
    head = write(store, apartment, PromoteUnit(building="header", unit_id=hotfix.id), "hotfix")
    result = ActivityEnvironment().run(
        manifests.restore_building_from_revision,
        RestoreFromRevisionInput(
            apartment=apartment,
            building="header",
            revision=base,
            change=change("restore"),
            only_if_active=FLEET_UNIT,
        ),
    )
    assert not result.restored and not result.applied
    assert "5.0.1" in (result.reason or "")
    assert result.revision == head  # nothing written
    assert header(store, apartment).active_unit == hotfix.id


def test_fleet_restore_keeps_another_rollouts_canary_in_flight(manifests: ManifestActivities) -> None:
    """The other half of "only if still active" (skyline/manifest_ops.py RestoreBuilding): the fleet's
    unit is still active but another rollout has a canary in the building; the restore leaves it."""
    store = manifests.store
    apartment = create(store)
    base = fleet_went_out(store, apartment)
    head = write(
        store,
        apartment,
        SetCanary(building="header", unit=unit("5.1.0"), rollout=RolloutConfig(percentage=10)),
    )
    result = ActivityEnvironment().run(
        manifests.restore_building_from_revision,
        RestoreFromRevisionInput(
            apartment=apartment,
            building="header",
            revision=base,
            change=change("restore"),
            only_if_active=FLEET_UNIT,
        ),
    )
    assert not result.restored and result.revision == head
    assert "header@5.1.0" in header(store, apartment).units


def test_rollback_restores_the_last_known_good_building_and_the_edge_serves_it(
    manifests: ManifestActivities, settings: Settings
) -> None:
    """Real-activity twin of tests/workflows/test_fast_rollout.py::
    test_established_harm_rolls_back_at_the_first_look (stand-ins: World.prepare_rollout's snapshot
    and World.restore_and_serve). The real prepare_rollout takes the snapshot from storage, the real
    restore_and_serve writes it back and the edge serves that revision."""
    store = manifests.store
    apartment = create(store)
    other = write(
        store, apartment, SetCanary(building="main", unit=unit("9.9.9"), rollout=RolloutConfig(percentage=50))
    )
    env = ActivityEnvironment()
    prep = env.run(
        manifests.prepare_rollout,
        PrepareRolloutInput(
            apartment=apartment, building="header", unit_id="header", version="2.0.0", force=False
        ),
    )
    assert prep.base_revision == other and prep.baseline_unit == "header@1.3.0"
    good = header(store, apartment)
    assert prep.snapshot == good
    write(
        store,
        apartment,
        SetCanary(building="header", unit=unit("2.0.0"), rollout=RolloutConfig(percentage=25)),
    )
    with httpx.Client(timeout=10) as http:
        cdn = CdnActivities(settings, make_cdn_provider(settings, http), http)
        result = env.run(
            EmergencyActivities(manifests, cdn).restore_and_serve,
            ApplyManifestChangeInput(
                apartment=apartment,
                change=change("rollback"),
                mutation=RestoreBuilding(building="header", snapshot=prep.snapshot),
            ),
        )
        assert result.applied and result.served_revision == result.revision
        assert header(store, apartment) == good  # the last-known-good building, exactly
        served = http.get(settings.public_url(f"manifests/{apartment}/manifest.json")).json()
    assert served["version"] == str(result.revision)
    assert served["apartments"][apartment]["buildings"]["header"]["active_unit"] == "header@1.3.0"
    assert "header@2.0.0" not in served["apartments"][apartment]["buildings"]["header"]["units"]
    # the other building's rollout, written meanwhile, is untouched
    assert "header@9.9.9" in served["apartments"][apartment]["buildings"]["main"]["units"]


def test_the_promotion_write_makes_the_canary_active_once(manifests: ManifestActivities) -> None:
    """Real-activity twin of tests/workflows/test_fast_rollout.py::
    test_a_healthy_canary_walks_every_step_and_becomes_active (stand-in: World.apply_manifest_change).
    The real write is conditional and idempotent: the same change retried writes nothing."""
    store = manifests.store
    apartment = create(store)
    canary = unit("2.0.0")
    write(store, apartment, SetCanary(building="header", unit=canary, rollout=RolloutConfig(percentage=100)))
    promote = ApplyManifestChangeInput(
        apartment=apartment,
        change=change("promote"),
        mutation=PromoteUnit(building="header", unit_id=canary.id),
    )
    env = ActivityEnvironment()
    first = env.run(manifests.apply_manifest_change, promote)
    assert first.applied
    building = header(store, apartment)
    assert building.active_unit == canary.id
    assert building.units[canary.id].rollout is None  # no longer a canary
    retried = env.run(manifests.apply_manifest_change, promote)  # an activity retry after a lost answer
    assert not retried.applied and retried.revision == first.revision
    found = store.read(apartment)
    assert found is not None and found[0].revision == first.revision


def test_active_units_reads_each_apartments_active_unit_now(manifests: ManifestActivities) -> None:
    """Twin of the stand-in `active_units` (tests/workflows/world.py), which
    tests/workflows/test_fast_pipeline.py::test_a_soak_fails_when_the_stage_no_longer_holds_the_unit uses."""
    store = manifests.store
    shipped, untouched = create(store), create(store)
    fleet_went_out(store, shipped)
    inp = ActiveUnitsInput(apartments=[shipped, untouched, "no-such-apartment"], building="header")
    active = ActivityEnvironment().run(manifests.active_units, inp)
    assert active == {shipped: FLEET_UNIT, untouched: "header@1.3.0", "no-such-apartment": None}
    missing = ActivityEnvironment().run(
        manifests.active_units, ActiveUnitsInput(apartments=[shipped], building="no-such-building")
    )
    assert missing == {shipped: None}
