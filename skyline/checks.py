"""Metric checks: PromQL templates with named arguments, and their bounds.

A check is evaluated for the canary and for the baseline (the unit it
replaces). `{version}` in a template is the variant being evaluated; also
available: {apartment}, {building}, {unit}, {canary_version},
{baseline_version}, {window}, plus the check's own `args`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
BUILTIN_ARGS = frozenset(
    {"apartment", "building", "unit", "version", "canary_version", "baseline_version", "window"}
)

LOADS = "skyline_unit_loads_total"
LOAD_SECONDS = "skyline_unit_load_seconds_bucket"
# The web vitals' histograms (api/beacons.py), by the name a rollout's `vitals` setting uses.
VITALS = {
    "lcp": "skyline_web_vitals_lcp_seconds_bucket",
    "inp": "skyline_web_vitals_inp_seconds_bucket",
    "cls": "skyline_web_vitals_cls_bucket",
}
_SEL = 'apartment="{apartment}",building="{building}",unit="{unit}",version="{version}"'


class MetricCheck(BaseModel):
    """One analysis check.

    kind `ratio`: `query` counts bad events and `total_query` all events over the
    window; judged with a binomial test against `max` and Fisher's exact test
    against the baseline. kind `value`: an instant value with absolute and
    relative bounds. kind `samples`: `query` is evaluated as a range over the
    window (one sample per step) and compared with Mann-Whitney U, as Kayenta does.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    kind: Literal["ratio", "value", "samples"] = "value"
    query: str
    total_query: str | None = None
    max: float | None = Field(default=None, description="absolute upper bound")
    min: float | None = Field(default=None, description="absolute lower bound")
    tolerance: float | None = Field(
        default=None, ge=0, description="relative bound: canary <= baseline * (1 + tolerance)"
    )
    min_samples: float = Field(default=0, ge=0, description="fewer events/samples is inconclusive")
    step_seconds: float = Field(default=5, gt=0, description="sample spacing for kind=samples")
    dry_run: bool = Field(default=False, description="evaluated and reported, never decides")
    args: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> MetricCheck:
        if self.kind == "ratio" and not self.total_query:
            raise ValueError(f"check {self.name!r}: kind 'ratio' needs total_query")
        if self.max is None and self.min is None and self.tolerance is None:
            raise ValueError(f"check {self.name!r}: give max, min and/or tolerance")
        known = BUILTIN_ARGS | set(self.args)
        for template in (self.query, self.total_query or ""):
            unknown = {m.group(1) for m in PLACEHOLDER.finditer(template)} - known
            if unknown:
                raise ValueError(
                    f"check {self.name!r}: unknown template argument(s) {sorted(unknown)}; "
                    f"known: {sorted(known)} (add your own under args)"
                )
        return self


def render(template: str, values: dict[str, str]) -> str:
    """Fill `{name}` placeholders; PromQL's own `{label="x"}` braces never match."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def default_checks(max_error_rate: float, max_p99_seconds: float, min_requests: float) -> list[MetricCheck]:
    """Seed 002's thresholds over the browser-load metrics the beacons export."""
    return [
        MetricCheck(
            name="error_rate",
            kind="ratio",
            query=f'sum(increase({LOADS}{{{_SEL},outcome!="loaded"}}[{{window}}]))',
            total_query=f"sum(increase({LOADS}{{{_SEL}}}[{{window}}]))",
            max=max_error_rate,
            # Twice the baseline's failure ratio, and significant, is a regression
            # even under the absolute bound; smaller drifts are left to `max`.
            tolerance=1.0,
            min_samples=min_requests,
        ),
        MetricCheck(
            name="p99_load_seconds",
            kind="value",
            query=f"histogram_quantile(0.99, sum by (le) (rate({LOAD_SECONDS}{{{_SEL}}}[{{window}}])))",
            max=max_p99_seconds,
        ),
    ]
