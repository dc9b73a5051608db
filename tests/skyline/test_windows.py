"""Release and freeze windows (skyline/windows.py), on fixed instants: 2025-03-03 is a Monday."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from skyline.windows import (
    FreezeWindow,
    PromotionWindows,
    ReleaseWindow,
    _open_by_week_minute,
    is_open,
    next_opening,
)


def utc(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """March 2025: day 3 is a Monday, 7 a Friday, 10 the next Monday."""
    return datetime(2025, 3, day, hour, minute, second, tzinfo=UTC)


def windows(**raw: object) -> PromotionWindows:
    return PromotionWindows.model_validate(raw)


WEEKEND_FREEZE = {"start_day": "fri", "start": "16:00", "end_day": "mon", "end": "09:00"}
OFFICE = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}


def test_no_windows_is_always_open() -> None:
    assert is_open(utc(8, 3), PromotionWindows())
    assert next_opening(utc(8, 3, 0, 30), PromotionWindows()) == utc(8, 3, 1)


def test_release_window_is_half_open_on_its_days() -> None:
    w = windows(release=[OFFICE])
    assert not is_open(utc(3, 8, 59), w)
    assert is_open(utc(3, 9, 0), w)
    assert is_open(utc(3, 16, 59), w)
    assert not is_open(utc(3, 17, 0), w)
    assert not is_open(utc(8, 12), w)  # Saturday
    assert is_open(utc(7, 12), w)  # Friday


def test_release_window_defaults_to_every_day() -> None:
    w = windows(release=[{"start": "10:00", "end": "11:00"}])
    assert is_open(utc(9, 10, 30), w)  # a Sunday
    assert not is_open(utc(9, 11, 30), w)


def test_any_of_several_release_windows_opens() -> None:
    w = windows(release=[{"start": "01:00", "end": "02:00"}, {"start": "20:00", "end": "21:00"}])
    assert is_open(utc(4, 1, 30), w) and is_open(utc(4, 20, 30), w)
    assert not is_open(utc(4, 12), w)


def test_release_window_is_read_in_its_time_zone() -> None:
    # 09:00-17:00 in Seoul (UTC+9) is 00:00-08:00 UTC
    w = windows(release=[{**OFFICE, "timezone": "Asia/Seoul"}])
    assert is_open(utc(4, 1), w)
    assert not is_open(utc(4, 12), w)
    # Monday 01:00 UTC is Monday 10:00 in Seoul; Sunday 23:30 UTC is Monday 08:30 there
    assert not is_open(utc(2, 23, 30), w)


def test_weekend_freeze_wraps_over_the_end_of_the_week() -> None:
    w = windows(freeze=[WEEKEND_FREEZE])
    assert is_open(utc(7, 15, 59), w)
    assert not is_open(utc(7, 16, 0), w)
    assert not is_open(utc(8, 12), w)
    assert not is_open(utc(9, 23, 59), w)
    assert not is_open(utc(10, 8, 59), w)
    assert is_open(utc(10, 9, 0), w)
    assert is_open(utc(5, 12), w)  # Wednesday


def test_freeze_inside_one_week() -> None:
    w = windows(freeze=[{"start_day": "tue", "start": "12:00", "end_day": "wed", "end": "06:30"}])
    assert is_open(utc(4, 11, 59), w)
    assert not is_open(utc(4, 12, 0), w)
    assert not is_open(utc(5, 6, 29), w)
    assert is_open(utc(5, 6, 30), w)
    assert is_open(utc(3, 13), w)  # the Monday before


def test_freeze_is_read_in_its_time_zone() -> None:
    # Friday 16:00 in Seoul is Friday 07:00 UTC
    w = windows(freeze=[{**WEEKEND_FREEZE, "timezone": "Asia/Seoul"}])
    assert is_open(utc(7, 6, 59), w)
    assert not is_open(utc(7, 7, 0), w)
    assert not is_open(utc(9, 23, 59), w)  # Monday 08:59 in Seoul
    assert is_open(utc(10, 0, 0), w)  # Monday 09:00 in Seoul: the freeze has ended


def test_a_freeze_wins_over_a_release_window() -> None:
    w = windows(release=[OFFICE], freeze=[WEEKEND_FREEZE])
    assert not is_open(utc(7, 16, 30), w)  # Friday, inside office hours, but frozen
    assert is_open(utc(7, 15, 30), w)


def test_next_opening_is_the_first_open_minute() -> None:
    w = windows(freeze=[WEEKEND_FREEZE])
    assert next_opening(utc(8, 12), w) == utc(10, 9, 0)
    # already open: now, rounded up to the next whole minute
    assert next_opening(utc(5, 12, 0), w) == utc(5, 12, 0)
    assert next_opening(utc(5, 12, 0, 30), w) == utc(5, 12, 1)
    assert next_opening(utc(7, 15, 59, 1), w) == utc(10, 9, 0)


def test_next_opening_gives_up_at_the_horizon() -> None:
    never = windows(release=[{"days": ["mon"], "start": "09:00", "end": "10:00"}])
    start = utc(4, 12)
    assert next_opening(start, never, horizon_days=6) == utc(10, 9, 0)
    assert next_opening(start, never, horizon_days=5) is None
    closed = windows(freeze=[{"start_day": "mon", "start": "00:00", "end_day": "mon", "end": "00:00"}])
    assert next_opening(start, closed, horizon_days=1) == start  # an empty freeze freezes nothing
    everything = windows(release=[{"days": [], "start": "00:00", "end": "23:59"}])
    assert next_opening(start, everything, horizon_days=2) is None
    assert next_opening(start, never) == utc(10, 9, 0)  # the default horizon is two weeks


def test_bad_windows_are_refused_with_a_reason() -> None:
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        ReleaseWindow.model_validate({"start": "09:00", "end": "17:00", "timezone": "Mars/Olympus"})
    with pytest.raises(ValidationError):
        ReleaseWindow.model_validate({"start": "24:00", "end": "17:00"})
    with pytest.raises(ValidationError):
        FreezeWindow.model_validate({**WEEKEND_FREEZE, "start_day": "friday"})
    with pytest.raises(ValidationError):
        PromotionWindows.model_validate({"release": [], "blackout": []})
    assert ReleaseWindow.model_validate({"start": "09:00", "end": "17:00"}).timezone == "UTC"


def test_next_opening_steps_whole_minutes() -> None:
    w = windows(release=[{"start": "12:00", "end": "12:01"}])
    assert next_opening(utc(3, 11, 58, 59), w) == utc(3, 12, 0)
    assert next_opening(utc(3, 12, 0, 59), w) == utc(3, 12, 1) - timedelta(minutes=1) + timedelta(days=1)


def test_next_opening_drops_sub_second_parts() -> None:
    w = windows(freeze=[WEEKEND_FREEZE])
    assert next_opening(utc(5, 12).replace(microsecond=500), w) == utc(5, 12, 1)


# ----- next_opening's fast path is is_open, minute by minute -------------------------------------

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"]
HHMM = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 1, 30, 45, 59]))
DAY = st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
RELEASE = st.fixed_dictionaries(
    {"days": st.lists(DAY, max_size=7), "start": HHMM, "end": HHMM, "timezone": st.sampled_from(ZONES)}
)
FREEZE = st.fixed_dictionaries(
    {"start_day": DAY, "start": HHMM, "end_day": DAY, "end": HHMM, "timezone": st.sampled_from(ZONES)}
)


def naive_next_opening(at: datetime, w: PromotionWindows, horizon_days: int) -> datetime | None:
    """The definition: the first whole minute at or after `at` that is_open says is open."""
    probe = at.replace(second=0, microsecond=0)
    probe += timedelta(minutes=1) if probe < at else timedelta(0)
    for minute in range(horizon_days * 1440):
        if is_open(probe + timedelta(minutes=minute), w):
            return probe + timedelta(minutes=minute)
    return None


@settings(max_examples=60, deadline=None)
@given(
    release=st.lists(RELEASE, max_size=3),
    freeze=st.lists(FREEZE, max_size=3),
    # around the 2025 DST changes: Europe and the US in March, Lord Howe's half hour in April
    at=st.datetimes(datetime(2025, 3, 5), datetime(2025, 4, 8), timezones=st.just(UTC)),
)
def test_next_opening_agrees_with_is_open_minute_by_minute(
    release: list[dict[str, object]], freeze: list[dict[str, object]], at: datetime
) -> None:
    w = windows(release=release, freeze=freeze)
    assert next_opening(at, w, horizon_days=2) == naive_next_opening(at, w, 2)
    # and minute by minute over a day and a half, every window's edges included
    open_at, first = _open_by_week_minute(w), at.replace(second=0, microsecond=0)
    for minute in range(36 * 60):
        probe = first + timedelta(minutes=minute)
        assert open_at(probe) == is_open(probe, w), probe
