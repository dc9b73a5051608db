"""Fleet specs (skyline/fleet.py): targets, batches, ids."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from skyline.fleet import FleetSpec, batches, fleet_id_for


def fleet(**kw: object) -> FleetSpec:
    base: dict[str, object] = {
        "building": "header",
        "unit_id": "header",
        "version": "2.0.0",
        "bundle": {"path": "/b"},
    }
    base.update(kw)
    return FleetSpec.model_validate(base)


def test_defaults_one_apartment_at_a_time_and_keep_what_is_done() -> None:
    spec = fleet()
    assert spec.apartments is None  # every apartment using the unit
    assert spec.batch_size == 1 and spec.batch_pause_seconds == 0 and spec.on_failure == "keep"


def test_targets_are_checked() -> None:
    assert fleet(apartments=["shop", "blog-2"]).apartments == ["shop", "blog-2"]
    with pytest.raises(ValidationError, match="give at least one apartment"):
        fleet(apartments=[])
    with pytest.raises(ValidationError, match="apartment 'Shop' must be lowercase"):
        fleet(apartments=["shop", "Shop"])
    with pytest.raises(ValidationError, match="apartments are listed twice"):
        fleet(apartments=["shop", "blog", "shop"])
    with pytest.raises(ValidationError):
        fleet(on_failure="retry")
    with pytest.raises(ValidationError):
        fleet(batch_size=0)


def test_batches_keep_order_and_size() -> None:
    assert batches(["a", "b", "c", "d", "e"], 2) == [["a", "b"], ["c", "d"], ["e"]]
    assert batches(["a", "b"], 5) == [["a", "b"]]
    assert batches(["a", "b", "c"], 1) == [["a"], ["b"], ["c"]]
    assert batches([], 3) == []


def test_one_fleet_per_building_and_unit() -> None:
    assert fleet_id_for("header", "nav") == "fleet.header.nav"
