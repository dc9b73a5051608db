"""Pure helpers the rollout workflow uses to describe itself (webhook payloads).

The A/B report is skyline/ab_report.py."""

from __future__ import annotations

from skyline.rollout import RolloutStatus


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
