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


# The apartment's structure, changed by people through the API (api/routes/apartments.py),
# never by a workflow. `if_revision` is the revision the caller last read (HTTP If-Match):
# checked against whatever revision the store reads, so it holds across a lost write race.


class AddBuilding(BaseModel):
    kind: Literal["add_building"] = "add_building"
    building: str
    spec: Building
    if_revision: int | None = None


class EditBuilding(BaseModel):
    """Rename a building: what people read (`name`), its id (`new_id`), or both."""

    kind: Literal["edit_building"] = "edit_building"
    building: str
    name: str | None = None
    new_id: str | None = None
    if_revision: int | None = None


class RemoveBuilding(BaseModel):
    kind: Literal["remove_building"] = "remove_building"
    building: str
    if_revision: int | None = None


class EditApartment(BaseModel):
    kind: Literal["edit_apartment"] = "edit_apartment"
    name: str | None = None
    description: str | None = None
    if_revision: int | None = None


# What workflows write (activity inputs, kept in their histories): the structural changes
# above are not part of it.
Mutation = Annotated[SetCanary | PromoteUnit | RestoreBuilding | CreateApartment, Field(discriminator="kind")]
StructureChange = AddBuilding | EditBuilding | RemoveBuilding | EditApartment
AnyMutation = SetCanary | PromoteUnit | RestoreBuilding | RestoreApartment | CreateApartment | StructureChange


class ManifestConflict(Exception):
    """The change cannot apply to the current manifest (not a write race)."""


class MissingBuilding(ManifestConflict):
    """The change names a building the apartment does not have."""


class BuildingRefused(ManifestConflict):
    """A structural change the building's state forbids; `code` is the API's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class StaleRevision(ManifestConflict):
    """The caller's If-Match names a revision that is no longer the head."""

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(
            f"the manifest is at revision {current}, not {expected} as If-Match says; "
            "read it again (GET /apartments/{id}) and decide on what it holds now"
        )
        self.expected, self.current = expected, current


def _building(apartment: Apartment, building_id: str) -> Building:
    try:
        return apartment.buildings[building_id]
    except KeyError:
        known = ", ".join(sorted(apartment.buildings)) or "none"
        raise MissingBuilding(f"building {building_id!r} does not exist (known: {known})") from None


def _units_text(building: Building) -> str:
    parts = []
    for key, unit in sorted(building.units.items()):
        state: str = "active" if key == building.active_unit else unit.status
        if unit.rollout is not None and key != building.active_unit:
            state += f" {unit.rollout.percentage:g}%"
        parts.append(f"{key} {state}")
    return ", ".join(parts)


def structure_refusal(
    building_id: str, building: Building, change: StructureChange
) -> BuildingRefused | None:
    """Why `change` may not touch this building as the manifest holds it, or None.

    Removing a building, or changing its id, is refused once any unit has shipped to it:
    its id is where shells mount it (`data-skyline-building`), what its metrics are
    labelled and its rollouts named by, and the revisions that served its units must stay
    restorable. Any edit is refused while a unit is in rollout: a rollback restores the
    building as the rollout found it, which would silently undo the edit.
    """
    canary = building.canary()
    if canary is not None and canary.rollout is not None:
        return BuildingRefused(
            "rollout_running",
            f"building {building_id!r} has {canary.id} in rollout at {canary.rollout.percentage:g}%; "
            "promote or roll it back first (a rollback restores the building as the rollout found it)",
        )
    moves = isinstance(change, RemoveBuilding) or (
        isinstance(change, EditBuilding) and change.new_id not in (None, building_id)
    )
    if moves and building.units:
        what = "removed" if isinstance(change, RemoveBuilding) else "given a new id"
        return BuildingRefused(
            "building_not_empty",
            f"building {building_id!r} holds units ({_units_text(building)}) and cannot be {what}: "
            "shells mount it and its metrics and rollouts are named by its id; "
            "only a building no unit has shipped to can be",
        )
    return None


def _apply_structure(apartment_id: str, apartment: Apartment, change: StructureChange) -> None:
    """Apply one structural change to `apartment` (a copy) in place."""
    if isinstance(change, EditApartment):
        if change.name is not None:
            apartment.name = change.name
        if change.description is not None:
            apartment.description = change.description
        return
    if isinstance(change, AddBuilding):
        if change.building in apartment.buildings:
            raise BuildingRefused(
                "building_exists", f"building {change.building!r} already exists in {apartment_id!r}"
            )
        apartment.buildings[change.building] = change.spec.model_copy(deep=True)
        return
    building = _building(apartment, change.building)
    refused = structure_refusal(change.building, building, change)
    if refused is not None:
        raise refused
    if isinstance(change, RemoveBuilding):
        del apartment.buildings[change.building]
        return
    if change.name is not None:
        building.name = change.name
    if change.new_id is not None and change.new_id != change.building:
        if change.new_id in apartment.buildings:
            raise BuildingRefused(
                "building_exists", f"building {change.new_id!r} already exists in {apartment_id!r}"
            )
        # Rebuilt rather than re-keyed in place: the other buildings keep their order.
        apartment.buildings = {
            (change.new_id if key == change.building else key): value
            for key, value in apartment.buildings.items()
        }


def apply_mutation(
    current: ApartmentManifest | None,
    apartment_id: str,
    mutation: AnyMutation,
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
    if isinstance(mutation, StructureChange):
        if mutation.if_revision is not None and mutation.if_revision != current.revision:
            raise StaleRevision(mutation.if_revision, current.revision)
        _apply_structure(apartment_id, nxt.apartments[apartment_id], mutation)
        nxt.version = str(current.revision + 1)
        nxt.timestamp = timestamp
        nxt.change = change.model_copy(update={"parent": current.version})
        return nxt
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
