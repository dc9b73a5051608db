"""SemVer rules of seed 000's VersionManager that the core rollout enforces."""

from __future__ import annotations

import semver


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
