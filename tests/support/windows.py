"""Release windows for tests: a freeze around now, whatever day and hour the test runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from skyline.windows import DAYS

SEOUL = ZoneInfo("Asia/Seoul")


def freeze_until(now: datetime, hours: float) -> tuple[dict[str, Any], datetime]:
    """A freeze in Seoul time from a few minutes before `now` to `hours` after it (a `window` or
    `promotion_windows` value), and when it opens (UTC, to the minute)."""
    start, end = (
        (now - timedelta(minutes=5)).astimezone(SEOUL),
        (now + timedelta(hours=hours)).astimezone(SEOUL),
    )
    window = {
        "freeze": [
            {
                "start_day": DAYS[start.weekday()],
                "start": start.strftime("%H:%M"),
                "end_day": DAYS[end.weekday()],
                "end": end.strftime("%H:%M"),
                "timezone": "Asia/Seoul",
            }
        ]
    }
    return window, end.replace(second=0, microsecond=0).astimezone(UTC)
