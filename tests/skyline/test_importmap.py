"""skyline/importmap.py against the shared vectors (the loader's importMapOf checks the same)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from skyline.importmap import bucket_map, import_map, specifier
from skyline.manifest import ApartmentManifest
from skyline.split import SplitUser, bucket_of

ROOT = Path(__file__).resolve().parents[2]
VECTORS: dict[str, Any] = json.loads((ROOT / "tests" / "vectors" / "split.json").read_text(encoding="utf-8"))
MANIFEST = ApartmentManifest.model_validate(VECTORS["resolve"]["manifest"])
CASES = VECTORS["importmap"]["cases"]
APARTMENT = VECTORS["importmap"]["apartment"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["user"]["id"])
def test_import_map_vectors(case: dict[str, Any]) -> None:
    got = import_map(MANIFEST, APARTMENT, SplitUser(**case["user"]))
    assert got.body() == case["map"]
    assert got.variant == case["variant"]
    buckets = {b: bucket_of(case["user"]["id"], APARTMENT, b) for b in case["buckets"]}
    assert buckets == case["buckets"]
    by_bucket = bucket_map(MANIFEST, APARTMENT, buckets)
    assert {**by_bucket.body(), "variant": by_bucket.variant, "targeted": by_bucket.targeted} == case[
        "bucket_map"
    ]


def test_vectors_cover_both_variants_and_a_targeted_canary() -> None:
    assert {c["variant"] for c in CASES} >= {"stable", "canary:header"}
    # main's canary is targeted (eu + beta): the user-aware map gives it, the bucket map never does.
    assert any("main" in c["variant"] for c in CASES)
    assert all("main" not in c["bucket_map"]["variant"] for c in CASES)
    assert all(c["bucket_map"]["targeted"] == ["main"] for c in CASES)


def test_the_map_depends_on_buckets_not_on_the_user_id() -> None:
    maps: dict[str, dict[str, Any]] = {}
    for i in range(200):
        user = f"user-{i}"
        buckets = {b: bucket_of(user, APARTMENT, b) for b in MANIFEST.apartment(APARTMENT).buildings}
        m = bucket_map(MANIFEST, APARTMENT, buckets)
        # Same variant, same map: at most 2 ** (untargeted canaries) distinct maps.
        assert maps.setdefault(m.variant, m.body()) == m.body()
        if "main" not in import_map(MANIFEST, APARTMENT, SplitUser(id=user)).variant:
            assert m.body() == import_map(MANIFEST, APARTMENT, SplitUser(id=user)).body()
    assert len(maps) <= 2**2
    assert specifier("shop", "header") == "@shop/header"
