"""Diffs between manifest revisions and the search for last-known-good."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from skyline.manifest import ApartmentManifest


class Change(BaseModel):
    path: str
    op: Literal["added", "removed", "changed"]
    old: Any = None
    new: Any = None
    summary: str | None = Field(
        default=None, description="an added or removed unit or building in words: id, version, weight first"
    )


def describe(value: Any) -> str | None:
    """A unit (or building) as a person looks for it: id, version and rollout weight first."""
    if not isinstance(value, dict):
        return None
    if "id" in value and "version" in value:
        parts = [f"unit {value['id']}", f"version {value['version']}"]
        rollout = value.get("rollout") or {}
        if isinstance(rollout, dict) and rollout.get("percentage") is not None:
            parts.append(f"rollout {rollout['percentage']:g}%")
        if value.get("status"):
            parts.append(f"status {value['status']}")
        return ", ".join(parts)
    if "units" in value and "category" in value:
        active = value.get("active_unit") or "-"
        return f"building {value.get('name', '?')} ({value['category']}), active unit {active}"
    return None


def _walk(path: str, old: Any, new: Any, out: list[Change]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            child = f"{path}.{key}" if path else str(key)
            if key not in old:
                out.append(Change(path=child, op="added", new=new[key], summary=describe(new[key])))
            elif key not in new:
                out.append(Change(path=child, op="removed", old=old[key], summary=describe(old[key])))
            else:
                _walk(child, old[key], new[key], out)
    elif old != new:
        out.append(Change(path=path, op="changed", old=old, new=new))


def diff(old: ApartmentManifest, new: ApartmentManifest) -> list[Change]:
    """What shells would see change (revision bookkeeping left out), as dotted paths."""
    out: list[Change] = []
    _walk("", old.content(), new.content(), out)
    return out


def is_settled(manifest: ApartmentManifest) -> bool:
    """No building carries a unit in rollout: every user gets the active units."""
    return all(
        building.canary() is None
        for apartment in manifest.apartments.values()
        for building in apartment.buildings.values()
    )


def last_known_good(
    revisions: Sequence[int], read: Callable[[int], ApartmentManifest | None], before: int | None = None
) -> ApartmentManifest | None:
    """The newest settled revision (no unit in rollout) of `revisions` (oldest first), at or
    below `before`; revisions `read` no longer finds are skipped. Reads newest first and stops
    at the first settled one."""
    for revision in reversed([r for r in revisions if before is None or r <= before]):
        found = read(revision)
        if found is not None and is_settled(found):
            return found
    return None
