"""Native import maps: the units one user gets, under bare specifiers. Pure, no I/O.

For an apartment and a user, the map names every building's unit under
``@<apartment>/<building>`` (the unit the traffic split in skyline/split.py
gives that user: the canary or the stable unit) and lists the SRI of every
module of those units in the map's ``integrity`` section, so a shell's own
modules can ``import "@shop/header"`` and the browser verifies the entry and
every chunk it fetches for it. The loader builds the same map in JavaScript
(``importMapOf`` in loader/skyline-loader.js); the ``importmap`` cases of
tests/vectors/split.json are checked against both.

What the map depends on: the split hashes ``"<user>:<apartment>:<building>"``
to a bucket in 0..9999, one per building, and a building's canary is in the
map exactly when its bucket is below ``percentage * 100`` (and the criteria
match). So, for one manifest revision, a map is a function of the user's
buckets only, and of those only through *which canaries they fall in*: an
apartment with k buildings in rollout has at most 2**k distinct maps
(``variant``, below), whatever the number of users.

Targeting: a canary with criteria (regions, segments, flags, custom rules)
depends on user attributes the buckets do not carry. ``untargeted=True`` (the
bucket-keyed endpoint) gives such a building its *stable* unit and names it in
``targeted``: a targeted canary is served only by the loader (or by
``import_map`` with the user's attributes), never to users it excludes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from skyline.manifest import ApartmentManifest, RolloutCriteria, Unit
from skyline.split import Assignment, SplitUser, in_percentage, resolve
from skyline.style_entries import StyleEntry, style_entry


def specifier(apartment: str, building: str) -> str:
    """The bare specifier of a building's unit: ``@shop/header``."""
    return f"@{apartment}/{building}"


def module_integrity(unit: Unit) -> dict[str, str]:
    """url -> SRI of every module of a unit: its module files and its entry (always: a bare
    specifier loads the entry without a ``<script integrity>``)."""
    out = {f.url: f.integrity for f in (unit.files or {}).values() if f.kind == "module"}
    out[unit.url] = unit.checksum
    return out


class ImportMap(BaseModel):
    imports: dict[str, str]
    integrity: dict[str, str]
    variant: str = Field(description="'stable', or 'canary:' and the buildings whose canary is in the map")
    targeted: list[str] = Field(
        default_factory=list, description="buildings whose targeted canary was left out (untargeted maps)"
    )

    def body(self) -> dict[str, Any]:
        """What goes into `<script type="importmap">`."""
        return {"imports": self.imports, "integrity": self.integrity}


def from_assignments(
    apartment: str, assignments: dict[str, Assignment], targeted: list[str] | None = None
) -> ImportMap:
    imports: dict[str, str] = {}
    integrity: dict[str, str] = {}
    canaries: list[str] = []
    for building, a in assignments.items():
        if a.unit is None:
            continue
        imports[specifier(apartment, building)] = a.unit.url
        integrity.update(module_integrity(a.unit))
        if a.reason == "canary":
            canaries.append(building)
    variant = "canary:" + ",".join(sorted(canaries)) if canaries else "stable"
    return ImportMap(imports=imports, integrity=integrity, variant=variant, targeted=targeted or [])


def import_map(manifest: ApartmentManifest, apartment: str, user: SplitUser) -> ImportMap:
    """The map of what `user` gets, criteria included: the loader's map."""
    return from_assignments(apartment, resolve(manifest, apartment, user))


def targeted_criteria(criteria: RolloutCriteria) -> bool:
    """Whether any criterion restricts the canary (an empty list restricts nothing)."""
    return bool(
        criteria.geo_regions or criteria.user_segments or criteria.feature_flags or criteria.custom_rules
    )


def bucket_map(manifest: ApartmentManifest, apartment: str, buckets: dict[str, int]) -> ImportMap:
    """The map for a user whose per-building buckets are `buckets` (a building not given is
    treated as outside its canary), with targeted canaries left out (see the module doc)."""
    return from_assignments(apartment, *bucket_assignments(manifest, apartment, buckets))


def styled_bucket_map(
    manifest: ApartmentManifest, apartment: str, buckets: dict[str, int], public_url: Callable[[str], str]
) -> tuple[ImportMap, list[StyleEntry]]:
    """`bucket_map`, with each unit that has stylesheets behind its generated entry module
    (skyline/style_entries.py): the specifier names the entry's edge URL (`public_url(key)`),
    `integrity` its SRI next to the unit's modules. Returns the entries the map names, which
    must be stored before a browser fetches them."""
    assignments, targeted = bucket_assignments(manifest, apartment, buckets)
    found = from_assignments(apartment, assignments, targeted)
    entries: list[StyleEntry] = []
    for building, a in assignments.items():
        entry = style_entry(a.unit) if a.unit is not None else None
        if entry is None:
            continue
        url = public_url(entry.key)
        found.imports[specifier(apartment, building)] = url
        found.integrity[url] = entry.integrity
        entries.append(entry)
    return found, entries


def bucket_assignments(
    manifest: ApartmentManifest, apartment: str, buckets: dict[str, int]
) -> tuple[dict[str, Assignment], list[str]]:
    """Each building's assignment for these buckets, and the targeted canaries left out."""
    assignments: dict[str, Assignment] = {}
    targeted: list[str] = []
    for building_id, building in manifest.apartment(apartment).buildings.items():
        bucket = buckets.get(building_id)
        canary = building.canary()
        if canary is not None and canary.rollout is not None:
            if targeted_criteria(canary.rollout.criteria):
                targeted.append(building_id)
            elif bucket is not None and in_percentage(bucket, canary.rollout.percentage):
                assignments[building_id] = Assignment(
                    building=building_id, bucket=bucket, reason="canary", unit=canary
                )
                continue
        active = building.active()
        assignments[building_id] = Assignment(
            building=building_id,
            bucket=bucket if bucket is not None else -1,
            reason="stable" if active is not None else "none",
            unit=active,
        )
    return assignments, targeted
