"""The A/B test report's model (kept in a rollout's status); skyline/ab_report.py builds it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Better = Literal["A", "B"]
Ending = Literal["running", "complete", "stopped", "rolled back"]
EXPERIMENT_OVER = "the experiment's time is up"  # how workflows/judged_bake.py ends an A/B step


class Variant(BaseModel):
    label: Literal["A", "B"]
    unit: str | None
    loads: int
    errors: int
    p50_seconds: float | None = None
    p99_seconds: float | None = None


class Comparison(BaseModel):
    """One check, B against A: rates, the difference B - A and its interval, and the verdict."""

    name: Literal["error_rate", "load_time"]
    measure: str = Field(description="what is counted, in words")
    a_rate: float | None = None
    a_n: int = 0
    b_rate: float | None = None
    b_n: int = 0
    difference: float | None = Field(default=None, description="B - A (lower is better)")
    lower: float | None = Field(default=None, description="anytime-valid bounds of B - A")
    upper: float | None = None
    confidence: float = Field(description="1 - the share of alpha this check gets")
    better: Better | None = None
    verdict: str = Field(description="'B is better', 'A is better' or 'difference not established'")
    missing: str | None = Field(default=None, description="what evidence would settle it")


class ABReport(BaseModel):
    unit_id: str
    a: Variant
    b: Variant
    split: float = Field(description="the share of users given B, in percent")
    ending: Ending
    outcome: str = Field(description="how the test ended, in words")
    observed_seconds: float = 0
    looks: int = 0
    comparisons: list[Comparison] = Field(default_factory=list)
    winner: Better | None = None
    summary: str
    missing: list[str] = Field(default_factory=list)
