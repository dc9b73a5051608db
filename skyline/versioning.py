"""SemVer rules of seed 000's VersionManager that the core rollout enforces."""

from __future__ import annotations

import nodesemver
import semver

from skyline.manifest import Apartment


class VersionRejected(ValueError):
    pass


def check_upgrade(active_version: str | None, new_version: str, force: bool) -> None:
    """A rollout must move a building forward unless the caller forces it."""
    new = semver.Version.parse(new_version)
    if active_version is None or force:
        return
    active = semver.Version.parse(active_version)
    if new <= active:
        raise VersionRejected(
            f"version {new_version} is not greater than the active version {active_version}; "
            "pick a higher version or set force=true to roll back deliberately"
        )


def split_dependency(dep: str) -> tuple[str, str]:
    """'react@^18.2', '@scope/ui@~1.4' or a bare name (any version)."""
    at = dep.rfind("@")
    if at <= 0:
        return dep, "*"
    return dep[:at], dep[at + 1 :] or "*"


def check_range(value: str, what: str) -> None:
    if nodesemver.valid_range(value, loose=False) is None:
        raise VersionRejected(
            f"{what} {value!r} is not an npm version range (e.g. ^1.2.0, ~1.4, 1.x, >=1 <2, 1.0.0 - 1.9.9)"
        )


def available_versions(apartment: Apartment) -> dict[str, list[str]]:
    """What a unit's dependencies can resolve to: the shell's shared libraries and its units."""
    found: dict[str, set[str]] = {}
    shared = getattr(apartment.config, "shared", None) or {}
    if isinstance(shared, dict):
        for name, versions in shared.items():
            for v in versions if isinstance(versions, list) else [versions]:
                found.setdefault(str(name), set()).add(str(v))
    for building in apartment.buildings.values():
        for unit in building.units.values():
            if unit.status != "deprecated":
                found.setdefault(unit.name, set()).add(unit.version)
    return {name: sorted(vs) for name, vs in found.items()}


def _satisfies(version: str, wanted: str) -> bool:
    """npm's semver.satisfies: a version that is not strict SemVer satisfies no range (nodesemver raises)."""
    try:
        return bool(nodesemver.satisfies(version, wanted, loose=False))
    except ValueError:
        return False


def check_unit_rules(apartment: Apartment, dependencies: list[str], compatibility: str) -> None:
    """Seed 000's VersionManager: the shell must be in the unit's range, every dependency resolvable."""
    check_range(compatibility, "compatibility")
    if not _satisfies(apartment.version, compatibility):
        raise VersionRejected(
            f"the unit supports shells {compatibility!r} but apartment {apartment.name!r} "
            f"is version {apartment.version}"
        )
    available = available_versions(apartment)
    for dep in dependencies:
        name, wanted = split_dependency(dep)
        check_range(wanted, f"dependency {name!r} range")
        versions = available.get(name, [])
        if not any(_satisfies(v, wanted) for v in versions):
            have = ", ".join(versions) or "none"
            raise VersionRejected(
                f"dependency {dep!r} has no compatible version in this apartment (available {name}: {have})"
            )
