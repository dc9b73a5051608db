"""Pure helpers the rollout workflow uses to describe itself (webhook payloads, A/B report)."""

from __future__ import annotations

from skyline.rollout import AnalysisRun, RolloutStatus


def webhook_payload(status: RolloutStatus, event: str) -> dict[str, object]:
    return {
        "event": event,
        "rollout_id": status.rollout_id,
        "apartment": status.apartment,
        "building": status.building,
        "unit_id": status.unit_id,
        "version": status.version,
        "strategy": status.strategy,
        "state": status.state,
        "step": status.step,
        "weight": status.weight,
        "reason": status.reason,
    }


def ab_report(status: RolloutStatus, runs: list[AnalysisRun]) -> str:
    """One line per check from the last run, the new unit (B) against the active one (A)."""
    if not runs:
        return "A/B test complete: no analysis ran, so there is nothing to compare"
    last = runs[-1]
    lines = [
        f"A/B test of {status.unit_id}: B={status.version} at {status.weight:g}% "
        f"against A={status.baseline_unit or 'none'}; {len(runs)} analyses, last verdict {last.verdict}"
    ]
    for check in last.checks:
        b = "n/a" if check.value is None else f"{check.value:.4g}"
        a = "n/a" if check.baseline is None else f"{check.baseline:.4g}"
        p = "" if check.p_value is None else f", p={check.p_value:.3g}"
        detail = f"; {check.detail}" if check.detail else ""
        lines.append(f"- {check.name}: B {b} vs A {a}{p} ({check.verdict}{detail})")
    lines.append("No automatic promotion: promote (full) to keep B, or roll back to keep A.")
    return "\n".join(lines)
