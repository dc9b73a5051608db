"""Manifest changes as data, applied by a pure function.

The manifest store re-applies a change to whatever revision it reads when a
conditional write loses a race, so changes describe intent on one building
(never a whole document) and two rollouts on different buildings of the same
apartment compose instead of overwriting each other.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from skyline.manifest import (
    Apartment,
    ApartmentManifest,
    Building,
    ManifestChange,
    RolloutConfig,
    Unit,
)


class SetCanary(BaseModel):
    kind: Literal["set_canary"] = "set_canary"
    building: str
    unit: Unit
    rollout: RolloutConfig


class PromoteUnit(BaseModel):
    kind: Literal["promote_unit"] = "promote_unit"
    building: str
    unit_id: str


class RestoreBuilding(BaseModel):
    """Put one building back exactly as it was in the last-known-good revision."""

    kind: Literal["restore_building"] = "restore_building"
    building: str
    snapshot: Building
    # Restore only while the building still holds what the restorer wrote: this
    # unit active and no other unit in rollout (a fleet never reverts a hotfix).
    only_if_active: str | None = None


class RestoreApartment(BaseModel):
    """Undo: the apartment as an earlier revision had it, written as a new revision."""

    kind: Literal["restore_apartment"] = "restore_apartment"
    apartment: Apartment
    from_revision: int


class CreateApartment(BaseModel):
    kind: Literal["create_apartment"] = "create_apartment"
    apartment: Apartment


Mutation = Annotated[SetCanary | PromoteUnit | RestoreBuilding | CreateApartment, Field(discriminator="kind")]


class ManifestConflict(Exception):
    """The change cannot apply to the current manifest (not a write race)."""


def _building(apartment: Apartment, building_id: str) -> Building:
    try:
        return apartment.buildings[building_id]
    except KeyError:
        raise ManifestConflict(f"building {building_id!r} does not exist") from None


def apply_mutation(
    current: ApartmentManifest | None,
    apartment_id: str,
    mutation: SetCanary | PromoteUnit | RestoreBuilding | RestoreApartment | CreateApartment,
    change: ManifestChange,
    timestamp: str,
) -> ApartmentManifest:
    """Return the next revision; `current` is never modified."""
    if isinstance(mutation, CreateApartment):
        if current is not None:
            raise ManifestConflict(f"apartment {apartment_id!r} already exists")
        return ApartmentManifest(
            version="1",
            timestamp=timestamp,
            apartments={apartment_id: mutation.apartment},
            change=change,
        )
    if current is None:
        raise ManifestConflict(f"apartment {apartment_id!r} does not exist")

    nxt = current.model_copy(deep=True)
    if isinstance(mutation, RestoreApartment):
        nxt.apartments[apartment_id] = mutation.apartment.model_copy(deep=True)
        nxt.version = str(current.revision + 1)
        nxt.timestamp = timestamp
        nxt.change = change.model_copy(update={"parent": current.version})
        return nxt
    apartment = nxt.apartments[apartment_id]
    building = _building(apartment, mutation.building)

    if isinstance(mutation, SetCanary):
        for key, unit in list(building.units.items()):
            # One unit in rollout per building: a previous canary left behind
            # (e.g. by a crash) is withdrawn rather than split traffic three ways.
            if unit.rollout is not None and key != mutation.unit.id:
                building.units[key] = unit.model_copy(update={"rollout": None, "status": "deprecated"})
        building.units[mutation.unit.id] = mutation.unit.model_copy(
            update={"status": "canary", "rollout": mutation.rollout}
        )
    elif isinstance(mutation, PromoteUnit):
        promoted = building.units.get(mutation.unit_id)
        if promoted is None:
            raise ManifestConflict(f"unit {mutation.unit_id!r} is not in building {mutation.building!r}")
        previous = building.active_unit
        if previous and previous != mutation.unit_id and previous in building.units:
            # Kept (not deleted) so switching back is one manifest write.
            building.units[previous] = building.units[previous].model_copy(update={"status": "deprecated"})
        building.units[mutation.unit_id] = promoted.model_copy(update={"status": "stable", "rollout": None})
        building.active_unit = mutation.unit_id
    elif isinstance(mutation, RestoreBuilding):
        expected = mutation.only_if_active
        if expected is not None:
            others = sorted(k for k, u in building.units.items() if u.rollout is not None and k != expected)
            if building.active_unit != expected or others:
                now = f"{building.active_unit or 'no unit'} active" + (
                    f", {', '.join(others)} in rollout" if others else ""
                )
                raise ManifestConflict(
                    f"building {mutation.building!r} no longer holds {expected} alone "
                    f"(now: {now}); left as it is"
                )
        apartment.buildings[mutation.building] = mutation.snapshot.model_copy(deep=True)

    nxt.version = str(current.revision + 1)
    nxt.timestamp = timestamp
    nxt.change = change.model_copy(update={"parent": current.version})
    return nxt
