"""Structural changes (issue 24) through the manifest store's If-Match loop, on real S3 (moto over HTTP).

A rival writer moves the head between the store's read and its conditional write (the
`on_base` hook runs right there): the store loses the S3 race, re-reads, and re-applies.
A change without If-Match composes with the rival's; one carrying the revision it was made
against is refused, because the check is made against the head it would replace.
"""

from __future__ import annotations

from typing import Any

import pytest

from adapters.manifest_store import ManifestStore
from skyline.manifest import Building, RolloutConfig
from skyline.manifest_ops import AddBuilding, RemoveBuilding, SetCanary, StaleRevision
from skyline.settings import Settings
from tests.activities.test_manifest_store import change, create, unit


def rival_once(store: ManifestStore, apartment: str) -> Any:
    """An on_base hook: the first time, another writer puts a canary on building `a`."""
    fired: list[int] = []

    def hook(base: int) -> None:
        if fired:
            return
        fired.append(base)
        canary = SetCanary(building="a", unit=unit("a", 1), rollout=RolloutConfig(percentage=5))
        ManifestStore(store.s3, store.bucket).apply(apartment, canary, change("rival"))

    return hook


def test_a_structural_change_that_loses_the_race_is_reapplied_and_composes(
    s3: Any, settings: Settings
) -> None:
    store = ManifestStore(s3, settings.s3_bucket)
    apartment = create(store, ["a", "b"])
    add = AddBuilding(building="c", spec=Building(name="C", category="main"))
    written, applied = store.apply(apartment, add, change("add-c"), on_base=rival_once(store, apartment))
    assert applied and written.revision == 3  # 1 created, 2 the rival, 3 ours on top of it
    buildings = written.apartments[apartment].buildings
    assert set(buildings) == {"a", "b", "c"} and "a@1.0.1" in buildings["a"].units
    assert written.change is not None and written.change.parent == "2"


def test_if_match_is_checked_against_the_head_it_would_replace(s3: Any, settings: Settings) -> None:
    store = ManifestStore(s3, settings.s3_bucket)
    apartment = create(store, ["a", "b"])
    remove = RemoveBuilding(building="b", if_revision=1)  # 1 was the head when the caller read it
    with pytest.raises(StaleRevision) as refused:
        store.apply(apartment, remove, change("rm-b"), on_base=rival_once(store, apartment))
    assert (refused.value.expected, refused.value.current) == (1, 2)
    head = store.read(apartment)
    assert head is not None and head[0].revision == 2 and "b" in head[0].apartments[apartment].buildings
    assert store.list_revisions(apartment) == [1, 2]
