from __future__ import annotations

import pytest

from skyline.manifest import (
    Apartment,
    ApartmentManifest,
    Building,
    ManifestChange,
    RolloutConfig,
    Unit,
)
from skyline.manifest_diff import diff, is_settled
from skyline.manifest_ops import (
    CreateApartment,
    ManifestConflict,
    PromoteUnit,
    RestoreApartment,
    RestoreBuilding,
    SetCanary,
    apply_mutation,
)


def unit(version: str, status: str = "stable") -> Unit:
    return Unit(
        id=f"header@{version}",
        name="header",
        version=version,
        url=f"https://edge/header/{version}/index.js",
        checksum="sha384-x",
        size=10,
        status=status,
    )


def manifest() -> ApartmentManifest:
    stable = unit("1.0.0")
    apt = Apartment(
        name="Shop",
        buildings={
            "header": Building(
                name="Header", category="header", active_unit=stable.id, units={stable.id: stable}
            ),
            "footer": Building(name="Footer", category="footer"),
        },
    )
    return apply_mutation(None, "shop", CreateApartment(apartment=apt), change("c0"), "t0")


def change(cid: str) -> ManifestChange:
    return ManifestChange(id=cid, actor="alice", reason="test")


def test_create_then_create_again_conflicts() -> None:
    m = manifest()
    assert m.version == "1" and m.change is not None and m.change.id == "c0"
    with pytest.raises(ManifestConflict, match="already exists"):
        apply_mutation(m, "shop", CreateApartment(apartment=m.apartments["shop"]), change("c1"), "t1")


def test_set_canary_adds_unit_in_rollout_and_bumps_revision() -> None:
    m = manifest()
    nxt = apply_mutation(
        m,
        "shop",
        SetCanary(building="header", unit=unit("1.1.0"), rollout=RolloutConfig(percentage=5)),
        change("c1"),
        "t1",
    )
    header = nxt.apartments["shop"].buildings["header"]
    canary = header.canary()
    assert canary is not None and canary.id == "header@1.1.0" and canary.status == "canary"
    assert canary.rollout is not None and canary.rollout.percentage == 5
    assert header.active_unit == "header@1.0.0"
    assert nxt.version == "2" and nxt.change is not None and nxt.change.parent == "1"
    # the input revision is untouched
    assert m.apartments["shop"].buildings["header"].canary() is None


def test_promote_makes_canary_active_and_keeps_old_unit_for_switch_back() -> None:
    m = manifest()
    m = apply_mutation(
        m,
        "shop",
        SetCanary(building="header", unit=unit("1.1.0"), rollout=RolloutConfig(percentage=50)),
        change("c1"),
        "t1",
    )
    m = apply_mutation(m, "shop", PromoteUnit(building="header", unit_id="header@1.1.0"), change("c2"), "t2")
    header = m.apartments["shop"].buildings["header"]
    assert header.active_unit == "header@1.1.0"
    assert header.units["header@1.1.0"].status == "stable" and header.units["header@1.1.0"].rollout is None
    assert header.units["header@1.0.0"].status == "deprecated"
    assert header.canary() is None


def test_restore_building_leaves_other_buildings_alone() -> None:
    base = manifest()
    snapshot = base.apartments["shop"].buildings["header"]
    m = apply_mutation(
        base,
        "shop",
        SetCanary(building="header", unit=unit("1.1.0"), rollout=RolloutConfig(percentage=50)),
        change("c1"),
        "t1",
    )
    footer_unit = unit("3.0.0").model_copy(update={"id": "footer@3.0.0", "name": "footer"})
    m = apply_mutation(
        m,
        "shop",
        SetCanary(building="footer", unit=footer_unit, rollout=RolloutConfig(percentage=5)),
        change("c2"),
        "t2",
    )
    m = apply_mutation(m, "shop", RestoreBuilding(building="header", snapshot=snapshot), change("c3"), "t3")
    assert m.apartments["shop"].buildings["header"] == snapshot
    assert m.apartments["shop"].buildings["footer"].canary() is not None
    assert m.version == "4"


def test_unknown_building_and_apartment_are_conflicts() -> None:
    m = manifest()
    with pytest.raises(ManifestConflict, match="building 'nav' does not exist"):
        apply_mutation(m, "shop", PromoteUnit(building="nav", unit_id="x"), change("c1"), "t1")
    with pytest.raises(ManifestConflict, match="does not exist"):
        apply_mutation(None, "shop", PromoteUnit(building="header", unit_id="x"), change("c1"), "t1")
    with pytest.raises(ManifestConflict, match="is not in building"):
        apply_mutation(m, "shop", PromoteUnit(building="header", unit_id="header@9.9.9"), change("c1"), "t1")


def test_manifest_json_keeps_seed_field_names() -> None:
    data = manifest().to_json_bytes().decode()
    for field in ('"global"', '"apartments"', '"buildings"', '"active_unit"', '"units"', '"checksum"'):
        assert field in data
    again = ApartmentManifest.from_json_bytes(data.encode())
    assert again.content() == manifest().content()


def test_diff_lists_what_shells_would_see_change() -> None:
    base = manifest()
    canary = apply_mutation(
        base,
        "shop",
        SetCanary(building="header", unit=unit("1.1.0"), rollout=RolloutConfig(percentage=5)),
        change("c1"),
        "t1",
    )
    changes = {c.path: c for c in diff(base, canary)}
    added = changes["apartments.shop.buildings.header.units.header@1.1.0"]
    assert added.op == "added" and added.new["rollout"]["percentage"] == 5
    assert all(not path.startswith(("version", "timestamp", "change")) for path in changes)
    promoted = apply_mutation(
        canary, "shop", PromoteUnit(building="header", unit_id="header@1.1.0"), change("c2"), "t2"
    )
    active = {c.path: c for c in diff(base, promoted)}["apartments.shop.buildings.header.active_unit"]
    assert (active.op, active.old, active.new) == ("changed", "header@1.0.0", "header@1.1.0")
    assert diff(base, base) == []
    assert is_settled(base) and not is_settled(canary) and is_settled(promoted)


def test_restore_apartment_brings_back_an_old_revision_as_a_new_one() -> None:
    base = manifest()
    promoted = apply_mutation(
        apply_mutation(
            base,
            "shop",
            SetCanary(building="header", unit=unit("1.1.0"), rollout=RolloutConfig(percentage=5)),
            change("c1"),
            "t1",
        ),
        "shop",
        PromoteUnit(building="header", unit_id="header@1.1.0"),
        change("c2"),
        "t2",
    )
    undone = apply_mutation(
        promoted,
        "shop",
        RestoreApartment(apartment=base.apartments["shop"], from_revision=1),
        change("u"),
        "t3",
    )
    assert undone.version == "4" and undone.content() == base.content()


def test_every_revision_records_when_and_after_what() -> None:
    base = manifest()
    canary = SetCanary(building="header", unit=unit("1.1.0"), rollout=RolloutConfig(percentage=5))
    nxt = apply_mutation(base, "shop", canary, change("c1"), "2025-03-03T12:00:00Z")
    assert nxt.timestamp == "2025-03-03T12:00:00Z"
    assert nxt.change == change("c1").model_copy(update={"parent": "1"})
    undone = apply_mutation(
        nxt, "shop", RestoreApartment(apartment=base.apartments["shop"], from_revision=1), change("u"), "t9"
    )
    assert undone.timestamp == "t9" and undone.version == "3"
    assert undone.change is not None and undone.change.id == "u" and undone.change.parent == "2"


def test_a_canary_left_behind_is_withdrawn_when_another_is_set() -> None:
    m = apply_mutation(
        manifest(),
        "shop",
        SetCanary(building="header", unit=unit("1.1.0"), rollout=RolloutConfig(percentage=25)),
        change("c1"),
        "t1",
    )
    m = apply_mutation(
        m,
        "shop",
        SetCanary(building="header", unit=unit("1.2.0"), rollout=RolloutConfig(percentage=5)),
        change("c2"),
        "t2",
    )
    header = m.apartments["shop"].buildings["header"]
    left = header.units["header@1.1.0"]
    assert left.rollout is None and left.status == "deprecated"
    assert header.units["header@1.0.0"].status == "stable"  # the active unit is not a canary
    assert header.canary() is not None and header.canary().id == "header@1.2.0"  # type: ignore[union-attr]
    # setting the same canary again only changes its weight
    again = apply_mutation(
        m,
        "shop",
        SetCanary(building="header", unit=unit("1.2.0"), rollout=RolloutConfig(percentage=50)),
        change("c3"),
        "t3",
    )
    same = again.apartments["shop"].buildings["header"].units["header@1.2.0"]
    assert same.status == "canary" and same.rollout is not None and same.rollout.percentage == 50


def test_promoting_the_active_unit_again_keeps_it_stable() -> None:
    m = apply_mutation(
        manifest(), "shop", PromoteUnit(building="header", unit_id="header@1.0.0"), change("c"), "t"
    )
    header = m.apartments["shop"].buildings["header"]
    assert header.active_unit == "header@1.0.0" and header.units["header@1.0.0"].status == "stable"


def test_a_promotion_over_an_active_unit_missing_from_its_units_adds_nothing() -> None:
    base = manifest()
    header = base.apartments["shop"].buildings["header"]
    header.active_unit = "header@0.1.0"  # a dangling pointer, e.g. written by hand
    m = apply_mutation(
        base,
        "shop",
        SetCanary(building="header", unit=unit("1.1.0"), rollout=RolloutConfig(percentage=5)),
        change("c1"),
        "t1",
    )
    m = apply_mutation(m, "shop", PromoteUnit(building="header", unit_id="header@1.1.0"), change("c2"), "t2")
    assert "header@0.1.0" not in m.apartments["shop"].buildings["header"].units


def test_restored_content_does_not_share_state_with_the_snapshot() -> None:
    base = manifest()
    snapshot = base.apartments["shop"].buildings["header"].model_copy(deep=True)
    m = apply_mutation(
        base, "shop", RestoreBuilding(building="header", snapshot=snapshot), change("c1"), "t1"
    )
    snapshot.units["header@1.0.0"].status = "deprecated"  # the caller keeps using its snapshot
    assert m.apartments["shop"].buildings["header"].units["header@1.0.0"].status == "stable"
    old = base.apartments["shop"].model_copy(deep=True)
    undone = apply_mutation(m, "shop", RestoreApartment(apartment=old, from_revision=1), change("u"), "t2")
    old.buildings["header"].units["header@1.0.0"].status = "deprecated"
    assert undone.apartments["shop"].buildings["header"].units["header@1.0.0"].status == "stable"


def test_a_conditional_restore_applies_only_while_the_building_holds_that_unit_alone() -> None:
    before = manifest()
    snapshot = before.apartments["shop"].buildings["header"].model_copy(deep=True)  # 1.0.0 active
    m = apply_mutation(
        before,
        "shop",
        SetCanary(building="header", unit=unit("1.1.0"), rollout=RolloutConfig(percentage=5)),
        change("c1"),
        "t1",
    )
    promoted = apply_mutation(
        m, "shop", PromoteUnit(building="header", unit_id="header@1.1.0"), change("c2"), "t2"
    )

    def restore(current: ApartmentManifest, building: str = "header") -> ApartmentManifest:
        undo = RestoreBuilding(building=building, snapshot=snapshot, only_if_active=f"{building}@1.1.0")
        return apply_mutation(current, "shop", undo, change("undo"), "t9")

    assert restore(promoted).apartments["shop"].buildings["header"].active_unit == "header@1.0.0"
    hotfix = apply_mutation(
        promoted,
        "shop",
        SetCanary(building="header", unit=unit("1.2.0"), rollout=RolloutConfig(percentage=5)),
        change("c3"),
        "t3",
    )
    with pytest.raises(ManifestConflict) as rolling:
        restore(hotfix)
    assert str(rolling.value) == (
        "building 'header' no longer holds header@1.1.0 alone "
        "(now: header@1.1.0 active, header@1.2.0 in rollout); left as it is"
    )
    # a hand-written manifest may hold more than one unit in rollout: all are named
    two = hotfix.model_copy(deep=True)
    old = two.apartments["shop"].buildings["header"].units["header@1.0.0"]
    old.rollout = RolloutConfig(percentage=1)
    with pytest.raises(
        ManifestConflict, match=r"\(now: header@1.1.0 active, header@1.0.0, header@1.2.0 in rollout\)"
    ):
        restore(two)
    replaced = apply_mutation(
        hotfix, "shop", PromoteUnit(building="header", unit_id="header@1.2.0"), change("c4"), "t4"
    )
    with pytest.raises(ManifestConflict) as other:
        restore(replaced)
    assert str(other.value) == (
        "building 'header' no longer holds header@1.1.0 alone (now: header@1.2.0 active); left as it is"
    )
    with pytest.raises(ManifestConflict) as empty:
        restore(promoted, "footer")
    assert str(empty.value) == (
        "building 'footer' no longer holds footer@1.1.0 alone (now: no unit active); left as it is"
    )
