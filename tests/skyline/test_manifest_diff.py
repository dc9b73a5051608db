"""A manifest diff names an added or removed unit by id, version and weight first."""

from __future__ import annotations

from rich.console import Console

from cli.render import diff_table
from skyline.manifest import Apartment, ApartmentManifest, Building, RolloutConfig, Unit
from skyline.manifest_diff import diff


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
