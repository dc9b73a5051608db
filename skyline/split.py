"""Traffic split: which unit of a building one user gets. Pure, no I/O.

The same rules live in the browser loader (`loader/skyline-loader.js`); the
shared vectors in `tests/vectors/split.json` are checked by pytest and by
node's test runner, so the two can never drift. Change both or neither.

Hash
    FNV-1a, 32 bit, over the UTF-8 bytes of ``"<user>:<apartment>:<building>"``
    (offset basis 0x811c9dc5, prime 0x01000193). Chosen because it is a few
    lines in any language with identical results: no library, no float maths.

Bucket
    ``hash % 10000``: 0.01 % granularity. Including the apartment and the
    building gives every building an independent draw, so the same users are
    not the guinea pigs of every canary at once.

Canary membership
    ``bucket < percentage * 100``, compared as IEEE doubles (a bucket is a
    small integer, exact in both languages), so 5 % is buckets 0..499 and
    raising the percentage only ever adds users: nobody flips back and forth
    between steps.

Criteria (RolloutCriteria; an empty or missing list does not restrict)
    geo_regions     the user's region is one of them
    user_segments   the user is in at least one of them
    feature_flags   the user has every one of them enabled
    custom_rules    all rules hold on ``user.attributes``: ``eq``/``neq``
                    compare with ``values[0]``, ``in``/``not_in`` with the list;
                    a missing attribute never matches (unknown users stay on
                    the stable unit).

Regions, segments and flags are compared case-insensitively (lower-cased on
both sides: `region=EU` matches `geo_regions: ["eu"]`); custom rule values are
compared exactly.

A user outside the bucket or the criteria gets the active (stable) unit; a
building with neither gets nothing. A user inside the bucket whom the criteria
exclude gets `excluded_by`: the first criterion that did (`geo_regions`,
`user_segments`, `feature_flags` or `custom_rules.<attribute>`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from skyline.manifest import ApartmentManifest, Building, CustomRule, RolloutCriteria, Unit

FNV_OFFSET = 0x811C9DC5
FNV_PRIME = 0x01000193
BUCKETS = 10_000

Reason = Literal["canary", "stable", "none"]


class SplitUser(BaseModel):
    """What the shell knows about its user; only `id` is required."""

    id: str
    region: str | None = None
    segments: list[str] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)
    attributes: dict[str, str] = Field(default_factory=dict)

    @field_validator("region")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value is not None else None

    @field_validator("segments", "flags")
    @classmethod
    def _lower_all(cls, value: list[str]) -> list[str]:
        return [v.lower() for v in value]


class Assignment(BaseModel):
    building: str
    bucket: int
    reason: Reason
    unit: Unit | None
    excluded_by: str | None = Field(
        default=None, description="in the canary's bucket but excluded by this criterion (reason: stable)"
    )


def fnv1a32(data: bytes) -> int:
    h = FNV_OFFSET
    for byte in data:
        h ^= byte
        h = (h * FNV_PRIME) & 0xFFFFFFFF
    return h


def bucket_of(user_id: str, apartment: str, building: str) -> int:
    return fnv1a32(f"{user_id}:{apartment}:{building}".encode()) % BUCKETS


def in_percentage(bucket: int, percentage: float) -> bool:
    return bucket < percentage * 100


def _rule_holds(rule: CustomRule, attributes: dict[str, str]) -> bool:
    value = attributes.get(rule.attribute)
    if value is None:
        return False
    if rule.operator == "eq":
        return bool(rule.values) and value == rule.values[0]
    if rule.operator == "neq":
        return bool(rule.values) and value != rule.values[0]
    if rule.operator == "in":
        return value in rule.values
    return value not in rule.values


def _lowered(values: list[str] | None) -> set[str]:
    return {v.lower() for v in values or []}


def criteria_exclusion(criteria: RolloutCriteria, user: SplitUser) -> str | None:
    """The first criterion that excludes the user, or None when all hold."""
    region = user.region.lower() if user.region is not None else None
    if criteria.geo_regions and region not in _lowered(criteria.geo_regions):
        return "geo_regions"
    if criteria.user_segments and not _lowered(criteria.user_segments) & _lowered(user.segments):
        return "user_segments"
    if criteria.feature_flags and not _lowered(criteria.feature_flags) <= _lowered(user.flags):
        return "feature_flags"
    for rule in criteria.custom_rules or []:
        if not _rule_holds(rule, user.attributes):
            return f"custom_rules.{rule.attribute}"
    return None


def criteria_match(criteria: RolloutCriteria, user: SplitUser) -> bool:
    return criteria_exclusion(criteria, user) is None


def resolve_building(apartment: str, building_id: str, building: Building, user: SplitUser) -> Assignment:
    bucket = bucket_of(user.id, apartment, building_id)
    canary = building.canary()
    excluded_by = None
    if canary is not None and canary.rollout is not None and in_percentage(bucket, canary.rollout.percentage):
        excluded_by = criteria_exclusion(canary.rollout.criteria, user)
        if excluded_by is None:
            return Assignment(building=building_id, bucket=bucket, reason="canary", unit=canary)
    active = building.active()
    if active is None:
        return Assignment(
            building=building_id, bucket=bucket, reason="none", unit=None, excluded_by=excluded_by
        )
    return Assignment(
        building=building_id, bucket=bucket, reason="stable", unit=active, excluded_by=excluded_by
    )


def resolve(manifest: ApartmentManifest, apartment: str, user: SplitUser) -> dict[str, Assignment]:
    """Every building of the apartment, in manifest order."""
    buildings = manifest.apartment(apartment).buildings
    return {bid: resolve_building(apartment, bid, b, user) for bid, b in buildings.items()}
