"""The loader benchmark's accounting of main-thread CPU (bench/loader.py), on a hand-made trace.

The budget of issue 15 is judged by this sum, so what it counts is tested: every top-level slice
of the renderer main thread in the window (tasks, and the microtask checkpoints Blink runs after a
task, where the loader's code after `await fetch(...)` runs), nested slices once, other threads
never, and the slice that crosses skyline:units pro rata.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.loader import _pages_cpu_ms, _thread_cpu_ms


def _slice(name: str, ts: float, dur: float, tdur: float, tid: int = 1) -> dict[str, Any]:
    return {"name": name, "ph": "X", "pid": 1, "tid": tid, "ts": ts, "dur": dur, "tdur": tdur}


def _mark(name: str, ts: float) -> dict[str, Any]:
    return {"name": name, "ph": "R", "pid": 1, "tid": 1, "ts": ts}


TASK = "ThreadControllerImpl::RunTask"
CHECKPOINT = "BlinkScheduler_PerformMicrotaskCheckpoint"


def test_every_top_level_slice_in_the_window_counts_once() -> None:
    trace = {
        "traceEvents": [
            _slice(TASK, 100, 400, 300),  # before the window: not counted
            _slice(TASK, 900, 1100, 800),  # runs skyline:start (module evaluation): counted whole
            _slice("V8.CompileCode", 950, 550, 400),  # nested in that task: not again
            _mark("skyline:start", 1000),
            _slice(CHECKPOINT, 2000, 500, 450),  # after a task, not inside one: counted
            _slice(TASK, 1000, 2000, 2000, tid=2),  # another thread: not counted
            _mark("skyline:units", 5000),
            _slice(CHECKPOINT, 4000, 2000, 1000),  # crosses skyline:units: half of it
            _slice(TASK, 6000, 1000, 900),  # after the window: not counted
        ]
    }
    assert _thread_cpu_ms(trace) == pytest.approx((800 + 450 + 500) / 1000)


def test_a_trace_without_both_marks_has_no_figure() -> None:
    assert _thread_cpu_ms([_mark("skyline:start", 1), _slice(TASK, 0, 10, 10)]) is None


def test_pages_in_one_trace_are_told_apart_by_navigation() -> None:
    def mark(name: str, ts: float, navigation: str, tid: int) -> dict[str, Any]:
        return {**_mark(name, ts), "tid": tid, "args": {"data": {"navigationId": navigation}}}

    trace = [
        mark("skyline:start", 1000, "a", 1),
        _slice(TASK, 900, 600, 500, tid=1),
        mark("skyline:units", 3000, "a", 1),
        mark("skyline:start", 5000, "b", 2),
        _slice(TASK, 4900, 200, 150, tid=2),
        _slice(CHECKPOINT, 6000, 100, 100, tid=2),
        mark("skyline:units", 7000, "b", 2),
        _slice(TASK, 5000, 1000, 1000, tid=1),  # page a's thread after its window: neither page's
    ]
    assert _pages_cpu_ms(trace) == pytest.approx([0.5, 0.25])
