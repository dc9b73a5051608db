from __future__ import annotations

import pytest
from pydantic import ValidationError

from skyline.rollout import RolloutSpec, rollout_id_for
from skyline.strategies import CanaryStrategy
from skyline.versioning import VersionRejected, check_upgrade


def spec(**kw: object) -> RolloutSpec:
    base: dict[str, object] = {
        "apartment": "shop",
        "building": "header",
        "unit_id": "header",
        "version": "1.2.0",
        "bundle": {"path": "/tmp/b"},
    }
    base.update(kw)
    return RolloutSpec.model_validate(base)


def test_defaults_follow_seed_002() -> None:
    s = spec()
    assert isinstance(s.strategy, CanaryStrategy)
    assert s.strategy.steps == [5, 25, 50, 100]
    assert s.strategy.bake_seconds == 600
    # seed 002's absolute thresholds are opt-in guards now: judged relative to the baseline by default
    assert s.strategy.max_error_rate is None and s.strategy.max_p99_seconds is None
    assert s.unit_key == "header@1.2.0"
    assert rollout_id_for("shop", "header") == "rollout.shop.header"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("version", "1.2", "not a SemVer version"),
        ("apartment", "Shop!", "must be lowercase"),
        ("building", "a.b", "must be lowercase"),
        ("entry", "../escape.js", "relative path inside the bundle"),
        ("bundle", {}, "exactly one of bundle.path or bundle.upload_id"),
        ("bundle", {"path": "/a", "upload_id": "b"}, "exactly one"),
    ],
)
def test_bad_fields_name_the_problem(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        spec(**{field: value})
    assert message in str(info.value)
    assert field in str(info.value.errors()[0]["loc"])


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([], "at least one step"),
        ([5, 25, 50], "last step must be 100"),
        ([25, 5, 100], "increase strictly"),
        ([0, 100], "(0, 100]"),
        ([50, 150], "(0, 100]"),
    ],
)
def test_bad_steps(steps: list[float], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace("]", r"\]")):
        CanaryStrategy(steps=steps)


def test_upgrade_rules() -> None:
    check_upgrade(None, "0.0.1", force=False)
    check_upgrade("1.0.0", "1.0.1", force=False)
    check_upgrade("1.0.0", "1.0.0-rc.1", force=True)
    with pytest.raises(VersionRejected, match="not greater than the active version 1.0.0"):
        check_upgrade("1.0.0", "1.0.0", force=False)
    with pytest.raises(VersionRejected):
        check_upgrade("1.0.0", "1.0.0-rc.1", force=False)
