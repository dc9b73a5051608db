"""What the manifest activities decide, as small pure functions they call.

The activities (activities/manifests.py) read and write storage; the rules they
follow live here, with storage passed in as a reader, so the fast layer
(tests/skyline/test_manifest_rules.py) and `make mutants` check them without the
embedded stack. The stack's tests (tests/activities/test_real_restore_rules.py)
still run the activities themselves, storage included.

- which building a rollout starts from (its last-known-good snapshot and the
  revision before its first write),
- which revision a fleet's restore reads (the one before the fleet) and on which
  condition it may write (only while the building still holds the fleet's unit),
- what a restore the store refused answers,
- where a retried write looks for an earlier attempt of itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel

from skyline.manifest import ApartmentManifest, Building, ManifestChange
from skyline.manifest_ops import RestoreBuilding

# How many revisions back a retried write without a heartbeat looks for its own earlier write.
RETRY_LOOKBACK = 50


class PrepareRolloutResult(BaseModel):
    base_revision: int
    snapshot: Building
    baseline_unit: str | None
    baseline_version: str | None


class RestoreFromRevisionInput(BaseModel):
    apartment: str
    building: str
    revision: int
    change: ManifestChange
    # Restore only if the building still holds this unit (what the fleet wrote).
    only_if_active: str | None = None


class RestoreFromRevisionResult(BaseModel):
    revision: int
    applied: bool
    restored: bool = True
    reason: str | None = None


class MissingRevision(Exception):
    """The revision a restore should read is not in storage."""


def starting_point(building: Building, head_revision: int) -> PrepareRolloutResult:
    """Where a rollout starts: the building as it is now (its last-known-good, restored on a
    rollback), the revision before the rollout's first write (a fleet restores from it), and
    the unit it compares the canary with."""
    active = building.active()
    return PrepareRolloutResult(
        base_revision=head_revision,
        snapshot=building,
        baseline_unit=building.active_unit,
        baseline_version=active.version if active else None,
    )


def fleet_restore(
    inp: RestoreFromRevisionInput, read_revision: Callable[[int], ApartmentManifest | None]
) -> RestoreBuilding:
    """The write that puts a fleet's building back: the building exactly as `inp.revision`
    (the revision before the fleet's first write) had it, written only while the building
    still holds the fleet's unit alone (`only_if_active`; a later hotfix stays)."""
    old = read_revision(inp.revision)
    if old is None:
        raise MissingRevision(f"apartment {inp.apartment!r} has no revision {inp.revision}")
    snapshot = old.apartment(inp.apartment).buildings[inp.building]
    return RestoreBuilding(building=inp.building, snapshot=snapshot, only_if_active=inp.only_if_active)


def restore_kept(reason: str, head: ApartmentManifest | None) -> RestoreFromRevisionResult:
    """A conditional restore the store refused (someone else changed the building since):
    nothing written, the building is theirs to keep, and why."""
    return RestoreFromRevisionResult(
        revision=head.revision if head is not None else 0, applied=False, restored=False, reason=reason
    )


def retry_base_hint(
    details: Sequence[Any], attempt: int, head_revision: Callable[[], int | None]
) -> int | None:
    """Where a manifest write starts looking for an earlier attempt of itself: the base its
    last heartbeat reported; on a retry without one, RETRY_LOOKBACK revisions back from the
    head (the previous attempt may have written before its heartbeat got out); on a first
    attempt, nowhere. `head_revision` is read only in the second case."""
    if details:
        return int(details[0])
    if attempt <= 1:
        return None
    head = head_revision()
    return max(0, head - RETRY_LOOKBACK) if head is not None else None


def holds_unit(building: Building | None, unit_name: str) -> bool:
    """Whether a fleet without a list of apartments takes this building: it has a unit of that name."""
    return building is not None and any(u.name == unit_name for u in building.units.values())
