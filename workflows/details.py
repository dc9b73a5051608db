"""The markdown the Temporal UI shows as a rollout's current details."""

from __future__ import annotations

from skyline.ab_report import render_ab_report
from skyline.rollout import RolloutStatus


def current_details(status: RolloutStatus) -> str:
    lines = [
        f"**{status.unit_id}@{status.version} → {status.apartment}/{status.building}** · "
        f"{status.strategy} · state **{status.state}**",
        f"Step {status.step + 1}/{len(status.steps)} · weight **{status.weight:g}%** · "
        f"steps {' → '.join(f'{w:g}' for w in status.steps)}",
    ]
    if status.paused_reason:
        lines.append(f"Paused: {status.paused_reason}")
    if status.waiting_for:
        lines.append(f"Waiting for {status.waiting_for}")
    run = status.last_analysis
    if run is not None:
        checks = ", ".join(
            f"{c.name} {'n/a' if c.value is None else f'{c.value:.4g}'} ({c.verdict})" for c in run.checks
        )
        lines.append(f"Last analysis at {run.weight:g}%: **{run.verdict}** — {checks or run.reason}")
        if run.health_score is not None:
            parts = ", ".join(f"{name} {value:.0f}" for name, value in run.health_components.items())
            lines.append(f"Health score **{run.health_score:.0f}**/100 ({parts})")
    if status.reason:
        lines.append(f"Result: {status.reason}")
    if status.ab_report is not None:
        lines.append("A/B report:\n\n" + "\n".join(render_ab_report(status.ab_report).splitlines()))
    return "\n\n".join(lines)
