"""Release and freeze windows per apartment (e.g. no promotions Friday 16:00 to Monday 09:00).

Kept in the apartment's manifest config as `promotion_windows`:
    {"release": [{"days": ["mon", "tue"], "start": "09:00", "end": "17:00", "timezone": "Europe/Berlin"}],
     "freeze": [{"start_day": "fri", "start": "16:00", "end_day": "mon", "end": "09:00",
                 "timezone": "Asia/Seoul"}]}
No release windows means always open; a freeze always wins.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: list[str] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"


class _Zoned(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}; use an IANA name like Europe/Berlin") from exc
        return value


class ReleaseWindow(_Zoned):
    days: list[Day] = Field(default_factory=lambda: list(DAYS))  # type: ignore[arg-type]
    start: str = Field(pattern=HHMM)
    end: str = Field(pattern=HHMM)


class FreezeWindow(_Zoned):
    start_day: Day
    start: str = Field(pattern=HHMM)
    end_day: Day
    end: str = Field(pattern=HHMM)


class PromotionWindows(BaseModel):
    model_config = ConfigDict(extra="forbid")
    release: list[ReleaseWindow] = Field(default_factory=list)
    freeze: list[FreezeWindow] = Field(default_factory=list)


def _t(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def _in_release(at: datetime, window: ReleaseWindow) -> bool:
    local = at.astimezone(ZoneInfo(window.timezone))
    start, end = _t(window.start), _t(window.end)
    return DAYS[local.weekday()] in window.days and start <= local.time() < end


def _week_minute(day: str, hhmm: str) -> int:
    t = _t(hhmm)
    return DAYS.index(day) * 1440 + t.hour * 60 + t.minute


def _in_freeze(at: datetime, window: FreezeWindow) -> bool:
    local = at.astimezone(ZoneInfo(window.timezone))
    now = local.weekday() * 1440 + local.hour * 60 + local.minute
    start = _week_minute(window.start_day, window.start)
    end = _week_minute(window.end_day, window.end)
    if start <= end:
        return start <= now < end
    return now >= start or now < end  # wraps over the week's end (Friday → Monday)


def is_open(at: datetime, windows: PromotionWindows) -> bool:
    if any(_in_freeze(at, f) for f in windows.freeze):
        return False
    return not windows.release or any(_in_release(at, r) for r in windows.release)


def _open_by_week_minute(windows: PromotionWindows) -> Callable[[datetime], bool]:
    """`is_open` for many minutes: each zone's local time once per minute, not once per window.

    Release pipelines ask this inside workflow code (a stage behind a window), where a
    two-week search over every minute must stay far below the workflow task's deadlock limit.
    """
    zones = {w.timezone: ZoneInfo(w.timezone) for w in [*windows.release, *windows.freeze]}
    freezes = [
        (w.timezone, _week_minute(w.start_day, w.start), _week_minute(w.end_day, w.end))
        for w in windows.freeze
    ]
    releases = [
        (
            w.timezone,
            {DAYS.index(d) for d in w.days},
            _week_minute("mon", w.start),
            _week_minute("mon", w.end),
        )
        for w in windows.release
    ]

    def open_at(at: datetime) -> bool:
        local = {name: at.astimezone(zone) for name, zone in zones.items()}
        minute = {name: t.weekday() * 1440 + t.hour * 60 + t.minute for name, t in local.items()}
        for zone, start, end in freezes:
            now = minute[zone]
            if (start <= now < end) if start <= end else (now >= start or now < end):
                return False
        if not releases:
            return True
        for zone, days, start, end in releases:
            day, of_day = divmod(minute[zone], 1440)
            if day in days and start <= of_day < end:
                return True
        return False

    return open_at


def next_opening(at: datetime, windows: PromotionWindows, horizon_days: int = 14) -> datetime | None:
    """The first minute at or after `at` when promotion is allowed, or None within the horizon."""
    probe = at.replace(second=0, microsecond=0)
    if probe < at:
        probe += timedelta(minutes=1)
    open_at = _open_by_week_minute(windows)
    for _ in range(horizon_days * 1440):
        if open_at(probe):
            return probe
        probe += timedelta(minutes=1)
    return None


class PromotionBlocked(BaseModel):
    """Why a scheduled promotion is not happening now (kept in the rollout's status)."""

    kind: Literal["freeze", "window"]
    reason: str
    next_opens: datetime | None = None
    at: datetime | None = Field(default=None, description="when the promotion was refused")


def _freeze_text(window: FreezeWindow) -> str:
    return f"{window.start_day} {window.start} to {window.end_day} {window.end} {window.timezone}"


def blocked(at: datetime, windows: PromotionWindows, horizon_days: int = 14) -> PromotionBlocked | None:
    """Why promotion is not allowed at `at` (a freeze wins over release windows), or None when open."""
    if is_open(at, windows):
        return None
    opening = next_opening(at, windows, horizon_days)
    nxt = (
        f"next opens {opening.isoformat()}" if opening else f"no window opens in the next {horizon_days} days"
    )
    freeze = next((f for f in windows.freeze if _in_freeze(at, f)), None)
    if freeze is not None:
        return PromotionBlocked(
            kind="freeze", reason=f"release freeze ({_freeze_text(freeze)}); {nxt}", next_opens=opening, at=at
        )
    return PromotionBlocked(
        kind="window", reason=f"outside the release window; {nxt}", next_opens=opening, at=at
    )
