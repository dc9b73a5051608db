"""A manifest diff names an added or removed unit by id, version and weight first."""

from __future__ import annotations

from rich.console import Console

from cli.render import diff_table
from skyline.manifest import Apartment, ApartmentManifest, Building, RolloutConfig, Unit
from skyline.manifest_diff import Change, _walk, describe, diff


def manifest(version: str, units: dict[str, Unit]) -> ApartmentManifest:
    building = Building(name="Header", category="header", active_unit="header@1.0.0", units=units)
    return ApartmentManifest(
        version=version,
        timestamp="2025-01-01T00:00:00Z",
        apartments={"shop": Apartment(name="Shop", buildings={"header": building})},
    )


def unit(version: str, weight: float | None = None) -> Unit:
    return Unit(
        id=f"header@{version}",
        name="header",
        version=version,
        url="u",
        checksum="sha384-" + "x" * 64,
        size=1,
        rollout=RolloutConfig(percentage=weight) if weight is not None else None,
    )


def test_an_added_unit_is_summarised_and_shown_first() -> None:
    old = manifest("1", {"header@1.0.0": unit("1.0.0")})
    new = manifest("2", {"header@1.0.0": unit("1.0.0"), "header@2.0.0": unit("2.0.0", 5)})
    changes = diff(old, new)
    added = next(c for c in changes if c.op == "added")
    assert added.summary is not None and added.summary.startswith(
        "unit header@2.0.0, version 2.0.0, rollout 5%"
    )
    data = {
        "apartment": "shop",
        "from_revision": 1,
        "to_revision": 2,
        "changes": [c.model_dump() for c in changes],
    }
    console = Console(width=200, record=True)
    console.print(diff_table(data))
    shown = console.export_text()
    assert "unit header@2.0.0, version 2.0.0, rollout 5%" in shown and "checksum" not in shown
    removed = diff(new, old)
    assert next(c for c in removed if c.op == "removed").summary.startswith("unit header@2.0.0")  # type: ignore[union-attr]


def test_a_unit_is_described_by_id_version_weight_and_status() -> None:
    full = {"id": "h@2", "version": "2", "rollout": {"percentage": 12.5}, "status": "canary", "url": "u"}
    assert describe(full) == "unit h@2, version 2, rollout 12.5%, status canary"
    assert (
        describe({"id": "h@2", "version": "2", "rollout": {"percentage": 5.0}})
        == "unit h@2, version 2, rollout 5%"
    )
    assert (
        describe({"id": "h@2", "version": "2", "rollout": {"percentage": 0}})
        == "unit h@2, version 2, rollout 0%"
    )
    assert describe({"id": "h@2", "version": "2", "rollout": None, "status": ""}) == "unit h@2, version 2"
    assert describe({"id": "h@2", "version": "2", "rollout": {"percentage": None}}) == "unit h@2, version 2"
    assert describe({"id": "h@2", "version": "2", "rollout": "10"}) == "unit h@2, version 2"
    assert describe({"id": "h@2", "version": "2", "status": "stable"}) == "unit h@2, version 2, status stable"


def test_a_building_is_described_by_name_category_and_active_unit() -> None:
    building = {"name": "Header", "category": "header", "active_unit": "h@1", "units": {}}
    assert describe(building) == "building Header (header), active unit h@1"
    assert (
        describe({"category": "main", "units": {}, "active_unit": None}) == "building ? (main), active unit -"
    )


def test_anything_else_is_not_described() -> None:
    values: list[object] = [
        None,
        "unit",
        3,
        ["id", "version"],
        {"id": "h@2"},
        {"version": "2"},
        {"units": {}},
    ]
    for value in values:
        assert describe(value) is None, value
    assert describe({"category": "main"}) is None


def test_a_diff_names_each_change_by_its_dotted_path_in_order() -> None:
    out: list[Change] = []
    old = {"a": 1, "b": {"c": 2, "d": 3, "gone": {"id": "x@1", "version": "1"}}, "same": {"k": [1]}}
    new = {"a": 2, "b": {"c": 2, "d": 4, "e": {"id": "y@2", "version": "2"}}, "same": {"k": [1]}, "z": None}
    _walk("", old, new, out)
    assert out == [
        Change(path="a", op="changed", old=1, new=2),
        Change(path="b.d", op="changed", old=3, new=4),
        Change(path="b.e", op="added", new={"id": "y@2", "version": "2"}, summary="unit y@2, version 2"),
        Change(path="b.gone", op="removed", old={"id": "x@1", "version": "1"}, summary="unit x@1, version 1"),
        Change(path="z", op="added", new=None),
    ]
    nested: list[Change] = []
    _walk("root", {"x": 1}, {"x": 1, "y": 2}, nested)
    assert nested == [Change(path="root.y", op="added", new=2)]
    swapped: list[Change] = []
    _walk("p", {"x": 1}, 5, swapped)  # a document where a value was: one change, not a walk
    assert swapped == [Change(path="p", op="changed", old={"x": 1}, new=5)]


def test_the_diff_of_two_revisions_leaves_bookkeeping_out() -> None:
    old = manifest("1", {"header@1.0.0": unit("1.0.0")})
    new = manifest("2", {"header@1.0.0": unit("1.0.0", 10)})
    changes = diff(old, new)
    assert [(c.path, c.op, c.old) for c in changes] == [
        ("apartments.shop.buildings.header.units.header@1.0.0.rollout", "changed", None)
    ]
    assert isinstance(changes[0].new, dict) and changes[0].new["percentage"] == 10.0
    assert diff(old, old) == []
