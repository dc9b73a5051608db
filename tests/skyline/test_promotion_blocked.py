"""A freeze or closed release window that blocks a scheduled promotion says which, and when it opens."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console

from cli.render import schedule_view, status_view, watch_view
from skyline.windows import FreezeWindow, PromotionWindows, ReleaseWindow, blocked

MONDAY_NOON = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)


def text(renderable: object) -> str:
    console = Console(width=200, record=True)
    console.print(renderable)
    return console.export_text()


def test_a_freeze_says_freeze_and_a_window_says_window() -> None:
    freeze = PromotionWindows(
        freeze=[FreezeWindow(start_day="mon", start="09:00", end_day="tue", end="09:00", timezone="UTC")]
    )
    frozen = blocked(MONDAY_NOON, freeze)
    assert frozen is not None and frozen.kind == "freeze"
    assert (
        frozen.reason == "release freeze (mon 09:00 to tue 09:00 UTC); next opens 2025-01-07T09:00:00+00:00"
    )
    assert frozen.next_opens == datetime(2025, 1, 7, 9, 0, tzinfo=UTC)
    assert frozen.at == MONDAY_NOON

    window = PromotionWindows(release=[ReleaseWindow(days=["tue"], start="10:00", end="12:00")])
    closed = blocked(MONDAY_NOON, window)
    assert closed is not None and closed.kind == "window"
    assert closed.reason == "outside the release window; next opens 2025-01-07T10:00:00+00:00"
    assert (closed.next_opens, closed.at) == (datetime(2025, 1, 7, 10, 0, tzinfo=UTC), MONDAY_NOON)
    assert blocked(datetime(2025, 1, 7, 10, 30, tzinfo=UTC), window) is None


def test_rollout_get_watch_and_schedule_describe_show_it() -> None:
    reason = "release freeze (fri 16:00 to mon 09:00 UTC); next opens 2025-01-06T09:00:00+00:00"
    block = {"kind": "freeze", "reason": reason, "next_opens": "2025-01-06T09:00:00Z"}
    status = {
        "rollout_id": "rollout.shop.header",
        "unit_id": "header",
        "version": "2.0.0",
        "apartment": "shop",
        "building": "header",
        "state": "paused",
        "steps": [100],
        "step": 0,
        "weight": 100,
        "paused_reason": "awaiting scheduled promotion: promote (full), or roll back",
        "promotion_blocked": block,
    }
    for view in (status_view, watch_view):
        shown = text(view(status))
        assert "release freeze" in shown and reason in shown
    row = {
        "id": "promote.rollout.shop.header",
        "rollout_id": "rollout.shop.header",
        "cron": ["0 10 * * 1-5"],
        "timezone": "UTC",
        "paused": False,
        "next_runs": [],
        "recent_runs": [],
        "promotion_blocked": block,
    }
    shown = text(schedule_view(row))
    assert "promotion blocked" in shown and reason in shown
    assert "promotion blocked  no" in text(schedule_view({**row, "promotion_blocked": None}))


def test_a_window_beyond_the_horizon_is_not_named() -> None:
    saturday = PromotionWindows(release=[ReleaseWindow(days=["sat"], start="10:00", end="12:00")])
    soon = blocked(MONDAY_NOON, saturday, horizon_days=3)
    assert soon is not None and soon.next_opens is None
    assert soon.reason == "outside the release window; no window opens in the next 3 days"
    later = blocked(MONDAY_NOON, saturday)  # two weeks by default
    assert later is not None and later.next_opens == datetime(2025, 1, 11, 10, 0, tzinfo=UTC)
    never = blocked(
        MONDAY_NOON, PromotionWindows(release=[ReleaseWindow(days=[], start="10:00", end="12:00")])
    )
    assert never is not None and never.next_opens is None
    assert never.reason == "outside the release window; no window opens in the next 14 days"
