"""The Python resolver against the shared vectors, and the JS loader against the same file."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from skyline.manifest import ApartmentManifest, Building, RolloutConfig, RolloutCriteria, Unit
from skyline.split import (
    BUCKETS,
    SplitUser,
    bucket_of,
    criteria_exclusion,
    criteria_match,
    fnv1a32,
    in_percentage,
    resolve,
    resolve_building,
)

ROOT = Path(__file__).resolve().parents[2]
VECTORS: dict[str, Any] = json.loads((ROOT / "tests" / "vectors" / "split.json").read_text(encoding="utf-8"))


def test_fnv1a32_matches_published_reference_values() -> None:
    assert fnv1a32(b"") == 0x811C9DC5
    assert fnv1a32(b"a") == 0xE40C292C
    assert fnv1a32(b"foobar") == 0xBF9CF968


@pytest.mark.parametrize("case", VECTORS["hash"], ids=lambda c: repr(c["input"])[:24])
def test_hash_vectors(case: dict[str, Any]) -> None:
    assert fnv1a32(case["input"].encode()) == case["fnv1a32"]


def test_bucket_vectors() -> None:
    assert VECTORS["buckets"]
    for case in VECTORS["buckets"]:
        got = bucket_of(case["user"], case["apartment"], case["building"])
        assert got == case["bucket"], case
        assert 0 <= got < BUCKETS


def test_percentage_vectors() -> None:
    for case in VECTORS["percentages"]:
        assert in_percentage(case["bucket"], case["percentage"]) is case["in"], case


def test_criteria_vectors() -> None:
    for case in VECTORS["criteria"]:
        criteria = RolloutCriteria.model_validate(case["criteria"])
        user = SplitUser.model_validate(case["user"])
        assert criteria_match(criteria, user) is case["match"], case
        assert criteria_exclusion(criteria, user) == case["excluded_by"], case
        # the resolver compares case-insensitively even criteria stored before validation lower-cased them
        raw = RolloutCriteria.model_construct(**{**case["criteria"], "custom_rules": criteria.custom_rules})
        assert criteria_exclusion(raw, user) == case["excluded_by"], case


def test_an_excluded_user_is_told_which_criterion_excluded_them() -> None:
    building = Building(
        name="Header",
        category="header",
        active_unit="header@1.0.0",
        units={
            "header@1.0.0": _unit("1.0.0"),
            "header@2.0.0": _unit("2.0.0").model_copy(
                update={
                    "rollout": RolloutConfig(
                        percentage=100, criteria=RolloutCriteria(geo_regions=["KR"], user_segments=["beta"])
                    )
                }
            ),
        },
    )
    assert building.units["header@2.0.0"].rollout.criteria.geo_regions == ["kr"]  # type: ignore[union-attr]
    korean = resolve_building("shop", "header", building, SplitUser(id="u", region="KR", segments=["Beta"]))
    assert korean.reason == "canary" and korean.excluded_by is None
    french = resolve_building("shop", "header", building, SplitUser(id="u", region="fr", segments=["beta"]))
    assert french.reason == "stable" and french.excluded_by == "geo_regions"
    outsider = resolve_building("shop", "header", building, SplitUser(id="u", region="kr"))
    assert outsider.excluded_by == "user_segments"


def test_resolve_vectors_cover_every_reason() -> None:
    data = VECTORS["resolve"]
    manifest = ApartmentManifest.model_validate(data["manifest"])
    seen: set[str] = set()
    for case in data["cases"]:
        got = resolve(manifest, data["apartment"], SplitUser.model_validate(case["user"]))
        simple = {
            b: {"unit": a.unit.id if a.unit else None, "reason": a.reason, "bucket": a.bucket}
            for b, a in got.items()
        }
        assert simple == case["expected"], case["user"]
        seen |= {a.reason for a in got.values()}
    assert seen == {"canary", "stable", "none"}


def _unit(version: str, percentage: float | None = None) -> Unit:
    return Unit(
        id=f"header@{version}",
        name="header",
        version=version,
        url=f"https://edge/{version}.js",
        checksum="sha384-x",
        size=1,
        rollout=RolloutConfig(percentage=percentage) if percentage is not None else None,
    )


def test_split_is_close_to_the_percentage_and_only_grows() -> None:
    users = [SplitUser(id=f"user-{i}") for i in range(20_000)]
    previous: set[str] = set()
    for pct in (5, 25, 50, 100):
        building = Building(
            name="Header",
            category="header",
            active_unit="header@1.0.0",
            units={"header@1.0.0": _unit("1.0.0"), "header@1.1.0": _unit("1.1.0", pct)},
        )
        canary = {u.id for u in users if resolve_building("shop", "header", building, u).reason == "canary"}
        assert abs(len(canary) / len(users) - pct / 100) < 0.01, pct
        assert previous <= canary
        previous = canary


def test_buildings_draw_independently() -> None:
    users = [f"user-{i}" for i in range(10_000)]
    header = {u for u in users if in_percentage(bucket_of(u, "shop", "header"), 50)}
    main = {u for u in users if in_percentage(bucket_of(u, "shop", "main"), 50)}
    # Independent halves overlap on about a quarter of users, not on all of them.
    assert 0.22 < len(header & main) / len(users) < 0.28


def test_javascript_loader_passes_the_same_vectors() -> None:
    node = shutil.which("node")
    assert node is not None, "node is required for the loader tests (Debian/Ubuntu: apt-get install nodejs)"
    done = subprocess.run(
        [node, "--test", "loader/"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    passed = re.search(r"^# pass (\d+)$", done.stdout, re.M)
    failed = re.search(r"^# fail (\d+)$", done.stdout, re.M)
    assert passed and failed, done.stdout
    assert int(passed.group(1)) >= 10 and int(failed.group(1)) == 0


def test_neq_rule_matches_any_other_value_and_a_rule_without_values_matches_nobody() -> None:
    def match(operator: str, values: list[str], plan: str | None) -> bool:
        criteria = RolloutCriteria.model_validate(
            {"custom_rules": [{"attribute": "plan", "operator": operator, "values": values}]}
        )
        attributes = {} if plan is None else {"plan": plan}
        return criteria_match(criteria, SplitUser(id="u", attributes=attributes))

    assert match("neq", ["free"], "pro") and not match("neq", ["free"], "free")
    assert not match("neq", ["free"], None)  # a missing attribute never matches
    assert not match("neq", [], "pro") and not match("eq", [], "pro")


def test_criteria_exclusion_is_reported_only_for_users_in_the_canarys_share() -> None:
    def building(percentage: float, active: bool) -> Building:
        canary = _unit("2.0.0").model_copy(
            update={
                "rollout": RolloutConfig(percentage=percentage, criteria=RolloutCriteria(geo_regions=["KR"]))
            }
        )
        units = {"header@2.0.0": canary}
        if active:
            units["header@1.0.0"] = _unit("1.0.0")
        return Building(
            name="Header", category="header", active_unit="header@1.0.0" if active else None, units=units
        )

    french = SplitUser(id="u", region="fr")
    # a first unit (nothing active): the excluded user gets no unit, and is told why
    first = resolve_building("shop", "header", building(100, active=False), french)
    assert (first.reason, first.unit, first.excluded_by) == ("none", None, "geo_regions")
    # outside the canary's share no criterion was asked
    for active in (False, True):
        outside = resolve_building("shop", "header", building(0, active=active), french)
        assert outside.excluded_by is None
