"""Heartbeats that also work when an activity runs as a local activity (the rollback's fast path)."""

from __future__ import annotations

from typing import Any

from temporalio import activity


def beat(*details: Any) -> None:
    """Heartbeat a regular activity; a local activity has no heartbeat (its workflow task does)."""
    if activity.in_activity() and not activity.info().is_local:
        activity.heartbeat(*details)
