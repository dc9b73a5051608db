"""Progress deadline (seed 004's max_deployment_time, Argo's progressDeadlineSeconds).

Counts the rollout's active time; time held by a human (a pause, a decision
the rollout waits for) does not count. Pure bookkeeping on workflow time.
"""

from __future__ import annotations

from datetime import datetime, timedelta


class ProgressDeadline:
    def __init__(self, limit_seconds: float | None, started: datetime) -> None:
        self.limit = limit_seconds
        self.started = started
        self.excluded = 0.0
        self.held_since: datetime | None = None
        self.fired = False

    def hold(self, now: datetime) -> None:
        if self.held_since is None:
            self.held_since = now

    def release(self, now: datetime) -> None:
        if self.held_since is not None:
            self.excluded += (now - self.held_since).total_seconds()
            self.held_since = None

    def active_seconds(self, now: datetime) -> float:
        held = (now - self.held_since).total_seconds() if self.held_since is not None else 0.0
        return (now - self.started).total_seconds() - self.excluded - held

    def left(self, now: datetime) -> float | None:
        """Seconds of active time left; None without a limit or while a human holds it."""
        if self.limit is None or self.held_since is not None or self.fired:
            return None
        return self.limit - self.active_seconds(now)

    def timeout(self, now: datetime, cap: float | None = None) -> timedelta | None:
        """How long a wait may last: until the deadline or `cap` seconds, whichever is sooner."""
        left = self.left(now)
        bounds = [b for b in (left, cap) if b is not None]
        return timedelta(seconds=max(0.0, min(bounds))) if bounds else None
