from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from skyline.strategies import (
    ABTestStrategy,
    BlueGreenStrategy,
    CanaryStrategy,
    ExponentialStrategy,
    ImmediateStrategy,
    LinearStrategy,
    Strategy,
    plan_steps,
)

STRATEGY: TypeAdapter[Strategy] = TypeAdapter(Strategy)


def weights(strategy: object) -> list[float]:
    return [s.weight for s in plan_steps(strategy)]  # type: ignore[arg-type]


def test_canary_default_is_seed_002() -> None:
    plan = plan_steps(CanaryStrategy())
    assert [s.weight for s in plan] == [5, 25, 50, 100]
    assert {s.bake_seconds for s in plan} == {600}


def test_canary_per_step_bake_times() -> None:
    strategy = STRATEGY.validate_python(
        {"steps": [{"weight": 1, "bake_seconds": 1800}, 10, {"weight": 100}], "bake_seconds": 60}
    )
    assert [(s.weight, s.bake_seconds) for s in plan_steps(strategy)] == [(1, 1800), (10, 60), (100, 60)]


def test_linear_and_exponential_generate_appconfig_style_steps() -> None:
    assert weights(LinearStrategy(step_percent=20)) == [20, 40, 60, 80, 100]
    assert weights(LinearStrategy(step_percent=30)) == [30, 60, 90, 100]
    assert weights(ExponentialStrategy(start_percent=2, factor=2)) == [2, 4, 8, 16, 32, 64, 100]
    assert weights(ExponentialStrategy(start_percent=10, factor=3)) == [10, 30, 90, 100]
    assert {s.bake_seconds for s in plan_steps(LinearStrategy(bake_seconds=360))} == {360}


def test_immediate_blue_green_and_ab() -> None:
    assert weights(ImmediateStrategy()) == [100]
    assert weights(BlueGreenStrategy()) == [100]
    ab = plan_steps(ABTestStrategy(split=30, duration_seconds=7200))
    assert [(s.weight, s.bake_seconds) for s in ab] == [(30, 7200)]


def test_kind_selects_the_strategy_and_defaults_to_canary() -> None:
    assert isinstance(STRATEGY.validate_python({}), CanaryStrategy)
    assert isinstance(STRATEGY.validate_python({"kind": "linear"}), LinearStrategy)
    assert isinstance(STRATEGY.validate_python({"kind": "ab_test", "split": 10}), ABTestStrategy)
    with pytest.raises(ValidationError):
        STRATEGY.validate_python({"kind": "yolo"})
    with pytest.raises(ValidationError, match="greater than 1"):
        STRATEGY.validate_python({"kind": "exponential", "factor": 1})
