"""Fleet rollouts (seed 004's Rolling strategy): one unit version across many apartments in batches."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from skyline.manifest import SLUG, SLUG_HELP
from skyline.rollout import HistoryEntry, RolloutSpec, Strict

FleetState = Literal["publishing", "progressing", "paused", "succeeded", "failed", "rolled_back"]
# kept: done, then changed by someone else (a hotfix); a fleet rollback leaves it as it is
ApartmentState = Literal["pending", "running", "succeeded", "rolled_back", "failed", "skipped", "kept"]


class FleetSpec(RolloutSpec):
    """A RolloutSpec for every apartment, plus how to batch them.

    `apartment` is ignored; `apartments` lists the targets, or None for every
    apartment whose `building` already holds a unit of this `unit_id`.
    """

    apartment: str = "fleet"
    apartments: list[str] | None = Field(default=None, max_length=500)
    batch_size: int = Field(default=1, ge=1, le=100)
    batch_pause_seconds: float = Field(default=0, ge=0, description="wait between batches (promote skips it)")
    on_failure: Literal["keep", "rollback_all"] = Field(
        default="keep", description="what happens to apartments already done when one fails"
    )

    @field_validator("apartments")
    @classmethod
    def _apartments(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError(
                "give at least one apartment, or leave it out to target every apartment using the unit"
            )
        for apartment in value:
            if not SLUG.match(apartment):
                raise ValueError(f"apartment {apartment!r} must be {SLUG_HELP} characters")
        if len(set(value)) != len(value):
            raise ValueError("apartments are listed twice")
        return value


def fleet_id_for(building: str, unit_id: str) -> str:
    return f"fleet.{building}.{unit_id}"


def batches(apartments: list[str], size: int) -> list[list[str]]:
    return [apartments[i : i + size] for i in range(0, len(apartments), size)]


class FleetInput(Strict):
    fleet_id: str
    spec: FleetSpec


class FleetApartment(Strict):
    apartment: str
    batch: int
    state: ApartmentState = "pending"
    rollout_id: str
    reason: str | None = None
    weight: float | None = None
    base_revision: int | None = Field(default=None, description="the revision before its rollout wrote")


class FleetStatus(Strict):
    fleet_id: str
    unit_id: str
    version: str
    building: str
    state: FleetState
    batches: list[list[str]] = Field(default_factory=list)
    batch: int = Field(default=-1, description="index of the batch running or last run")
    apartments: dict[str, FleetApartment] = Field(default_factory=dict)
    paused_reason: str | None = None
    reason: str | None = None
    history: list[HistoryEntry] = Field(default_factory=list)
    started_at: datetime
    updated_at: datetime
