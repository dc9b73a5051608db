"""The progress deadline (workflows/deadline.py): active time only; a human's hold does not count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workflows.deadline import ProgressDeadline

T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_active_time_runs_from_the_start() -> None:
    deadline = ProgressDeadline(600, T0)
    assert deadline.active_seconds(at(0)) == 0
    assert deadline.active_seconds(at(90)) == 90
    assert deadline.left(at(90)) == 510
    assert deadline.left(at(700)) == -100  # overdue: the caller fires on <= 0


def test_no_limit_never_runs_out() -> None:
    deadline = ProgressDeadline(None, T0)
    assert deadline.left(at(10_000)) is None
    assert deadline.active_seconds(at(30)) == 30


def test_time_held_by_a_human_does_not_count() -> None:
    deadline = ProgressDeadline(600, T0)
    deadline.hold(at(100))
    assert deadline.left(at(200)) is None  # while held, nothing counts down
    assert deadline.active_seconds(at(250)) == 100
    deadline.release(at(400))
    assert deadline.active_seconds(at(400)) == 100
    assert deadline.left(at(450)) == 450  # 150 s active in all


def test_holding_twice_keeps_the_first_moment_and_release_without_hold_is_harmless() -> None:
    deadline = ProgressDeadline(600, T0)
    deadline.release(at(50))  # nothing held: no effect
    assert deadline.active_seconds(at(50)) == 50
    deadline.hold(at(100))
    deadline.hold(at(300))  # already held since 100
    deadline.release(at(400))
    assert deadline.excluded == 300
    assert deadline.active_seconds(at(500)) == 200
    deadline.release(at(600))  # a second release excludes nothing more
    assert deadline.excluded == 300


def test_holds_add_up() -> None:
    deadline = ProgressDeadline(1000, T0)
    for start in (100, 300, 500):
        deadline.hold(at(start))
        deadline.release(at(start + 50))
    assert deadline.active_seconds(at(700)) == pytest.approx(550)
    assert deadline.left(at(700)) == pytest.approx(450)


def test_a_fired_deadline_reports_nothing_left() -> None:
    deadline = ProgressDeadline(60, T0)
    deadline.fired = True
    assert deadline.left(at(10)) is None
