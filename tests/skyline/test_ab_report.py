"""The A/B report names the better variant with the judge's method, whatever way the test ended."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from cli.render import status_view
from skyline.ab_report import build_ab_report, render_ab_report
from skyline.figures import Figures, Look
from skyline.rollout import HistoryEntry, RolloutStatus, StepLooks
from workflows.details import current_details

NOW = datetime(2025, 1, 6, 10, 0, tzinfo=UTC)
# A: median in the 0.25 s bucket; B: twice as slow (most loads beyond 0.25 s)
A = Figures(
    loads=2000, errors=10, load_seconds={"0.1": 400, "0.25": 1000, "0.5": 1800, "1": 1980, "+Inf": 1990}
)
B = Figures(
    loads=2000, errors=12, load_seconds={"0.1": 100, "0.25": 300, "0.5": 1000, "1": 1900, "+Inf": 1988}
)


def status(
    state: str = "paused", *, canary: Figures = B, baseline: Figures = A, **extra: Any
) -> RolloutStatus:
    looks = [
        Look(at_seconds=20, canary=Figures(loads=10), baseline=Figures(loads=10)),
        Look(at_seconds=40, canary=canary, baseline=baseline),
    ]
    data: dict[str, Any] = {
        "rollout_id": "rollout.shop.header",
        "apartment": "shop",
        "building": "header",
        "unit_id": "header",
        "version": "2.0.0",
        "state": state,
        "steps": [50],
        "step": 0,
        "weight": 50,
        "strategy": "ab_test",
        "baseline_unit": "header@1.0.0",
        "started_at": NOW,
        "updated_at": NOW,
        "looks": [
            StepLooks(
                index=0,
                weight=50,
                bake_seconds=40,
                last=False,
                looks=looks,
                decision="promote",
                reason="the experiment's time is up",
            )
        ],
    }
    data.update(extra)
    return RolloutStatus.model_validate(data)


def test_a_slower_b_loses_on_load_time_and_errors_are_not_established() -> None:
    report = build_ab_report(status(paused_reason="the A/B test is complete: promote (full) ..."))
    assert report.ending == "complete"
    assert report.winner == "A"
    load_time = next(c for c in report.comparisons if c.name == "load_time")
    assert "0.25s" in load_time.measure and load_time.better == "A"
    assert load_time.lower is not None and load_time.lower > 0.25  # B is ~35 points slower
    errors = next(c for c in report.comparisons if c.name == "error_rate")
    assert errors.verdict == "difference not established"
    assert errors.lower is not None and errors.upper is not None and errors.lower < 0 < errors.upper
    text = render_ab_report(report)
    assert "B=2.0.0 at 50% against A=header@1.0.0" in text
    assert "Winner: A (A is better than B on load_time; error_rate: difference not established)" in text
    assert (
        "load_time (loads slower than 0.25s (A's median bucket)): B 84.9% of 1,988 vs A 49.7% of 1,990"
        in text
    )
    assert "interval [" in text and "Missing evidence: error_rate: about" in text
    assert "p99 B" in text and "A n/a" not in text


def test_a_test_rolled_back_early_or_stopped_by_a_human_still_has_its_report() -> None:
    def entry(action: str, actor: str, reason: str = "") -> HistoryEntry:
        return HistoryEntry(
            at=NOW, action=action, actor=actor, reason=reason, state="progressing", step=0, weight=50
        )

    early = status("rolled_back", reason="analysis failed: error_rate established above 1%")
    early.looks[0].decision, early.looks[0].reason = "rollback", "error_rate: ..."
    report = build_ab_report(early)
    assert report.ending == "rolled back" and "rolled back early: analysis failed" in report.outcome
    assert report.comparisons and "Winner:" in render_ab_report(report)

    stopped = status("rolled_back", history=[entry("rollback", "dave", "B hurts conversion")])
    stopped.looks[0].decision, stopped.looks[0].reason = "rollback", "rolled back"
    report = build_ab_report(stopped)
    assert report.ending == "stopped" and report.outcome == "A kept: rolled back by dave (B hurts conversion)"

    kept = status("succeeded", history=[entry("promote full", "carol")])
    assert build_ab_report(kept).outcome == "B kept: promoted by carol"

    nothing = status("rolled_back", looks=[])
    report = build_ab_report(nothing)
    assert report.winner is None and "no look at the metrics was taken" in render_ab_report(report)


def test_equal_variants_name_no_winner_and_say_what_is_missing() -> None:
    report = build_ab_report(status(canary=A, baseline=A))
    assert report.winner is None
    assert report.summary == "no winner: difference not established on any check"
    assert any("more loads of B" in m for m in report.missing)


def test_cli_table_and_temporal_ui_details_show_the_report() -> None:
    s = status(paused_reason="the A/B test is complete")
    report = build_ab_report(s)
    s.ab_report, s.report = report, render_ab_report(report)
    console = Console(width=200, record=True)
    console.print(status_view(s.model_dump(mode="json")))
    shown = console.export_text()
    assert "A/B test: A is better" in shown
    assert "load_time" in shown and "A is better" in shown and "difference not established" in shown
    assert "B = header@2.0.0 at 50%, A = header@1.0.0" in shown
    assert "missing: error_rate: about" in shown
    details = current_details(s)
    assert "A/B report" in details and "Winner: A" in details
