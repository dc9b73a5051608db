"""Structural manifest changes (add, rename, remove a building; edit the apartment) as data."""

from __future__ import annotations

import pytest

from skyline.manifest import Building, RolloutConfig
from skyline.manifest_ops import (
    AddBuilding,
    BuildingRefused,
    EditApartment,
    EditBuilding,
    MissingBuilding,
    RemoveBuilding,
    SetCanary,
    StaleRevision,
    apply_mutation,
)
from tests.skyline.test_manifest_ops import change, manifest, unit


def test_add_building_writes_the_next_revision_and_keeps_the_rest() -> None:
    m = manifest()
    spec = Building(name="Checkout", category="main")
    nxt = apply_mutation(m, "shop", AddBuilding(building="checkout", spec=spec), change("c1"), "t1")
    assert nxt.revision == 2 and nxt.change is not None and nxt.change.parent == "1"
    buildings = nxt.apartments["shop"].buildings
    assert list(buildings) == ["header", "footer", "checkout"]
    assert buildings["checkout"] == spec and buildings["header"] == m.apartments["shop"].buildings["header"]
    assert "checkout" not in m.apartments["shop"].buildings  # the input is never modified
    with pytest.raises(BuildingRefused, match="already exists") as refused:
        apply_mutation(nxt, "shop", AddBuilding(building="checkout", spec=spec), change("c2"), "t2")
    assert refused.value.code == "building_exists"


def test_if_revision_is_checked_against_the_revision_applied_to() -> None:
    m = manifest()
    stale = AddBuilding(building="x", spec=Building(name="X", category="main"), if_revision=7)
    with pytest.raises(StaleRevision) as refused:
        apply_mutation(m, "shop", stale, change("c1"), "t1")
    assert (refused.value.expected, refused.value.current) == (7, 1)
    fresh = stale.model_copy(update={"if_revision": 1})
    assert apply_mutation(m, "shop", fresh, change("c1"), "t1").revision == 2


def test_remove_only_an_empty_building() -> None:
    m = manifest()
    nxt = apply_mutation(m, "shop", RemoveBuilding(building="footer"), change("c1"), "t1")
    assert list(nxt.apartments["shop"].buildings) == ["header"]
    with pytest.raises(BuildingRefused, match=r"holds units \(header@1.0.0 active\)") as refused:
        apply_mutation(m, "shop", RemoveBuilding(building="header"), change("c1"), "t1")
    assert refused.value.code == "building_not_empty"
    with pytest.raises(MissingBuilding, match="known: footer, header"):
        apply_mutation(m, "shop", RemoveBuilding(building="nope"), change("c1"), "t1")


def test_rename_a_building_name_or_id() -> None:
    m = manifest()
    named = apply_mutation(m, "shop", EditBuilding(building="header", name="Top bar"), change("c1"), "t1")
    header = named.apartments["shop"].buildings["header"]
    assert header.name == "Top bar" and header.active_unit == "header@1.0.0"
    moved = apply_mutation(m, "shop", EditBuilding(building="footer", new_id="bottom"), change("c1"), "t1")
    assert list(moved.apartments["shop"].buildings) == ["header", "bottom"]
    with pytest.raises(BuildingRefused, match="cannot be given a new id") as refused:
        apply_mutation(m, "shop", EditBuilding(building="header", new_id="top"), change("c1"), "t1")
    assert refused.value.code == "building_not_empty"
    with pytest.raises(BuildingRefused, match="'header' already exists"):
        apply_mutation(m, "shop", EditBuilding(building="footer", new_id="header"), change("c1"), "t1")


def test_no_edit_of_a_building_with_a_unit_in_rollout() -> None:
    m = manifest()
    canary = SetCanary(building="header", unit=unit("1.1.0"), rollout=RolloutConfig(percentage=5))
    rolling = apply_mutation(m, "shop", canary, change("c1"), "t1")
    for edit in (EditBuilding(building="header", name="Top"), RemoveBuilding(building="header")):
        with pytest.raises(BuildingRefused, match="header@1.1.0 in rollout at 5%") as refused:
            apply_mutation(rolling, "shop", edit, change("c2"), "t2")
        assert refused.value.code == "rollout_running"
    # another building of the same apartment stays editable
    other = apply_mutation(rolling, "shop", EditBuilding(building="footer", name="Foot"), change("c2"), "t2")
    assert other.apartments["shop"].buildings["footer"].name == "Foot"


def test_edit_apartment_name_and_description() -> None:
    m = manifest()
    nxt = apply_mutation(m, "shop", EditApartment(name="Shop EU"), change("c1"), "t1")
    assert nxt.apartments["shop"].name == "Shop EU" and nxt.apartments["shop"].description == ""
    both = apply_mutation(nxt, "shop", EditApartment(description="EU storefront"), change("c2"), "t2")
    assert (both.apartments["shop"].name, both.apartments["shop"].description) == ("Shop EU", "EU storefront")
