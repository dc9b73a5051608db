"""Where a rollout's time goes, read from its workflow history.

Per activity type: scheduled -> started (the wait for a worker slot, i.e. the
task queue's backlog) and started -> closed (the activity itself). Workflow
tasks likewise: scheduled -> started (backlog on the workflow side) and
started -> completed (the worker running workflow code). Timers are the
bakes the strategy asked for, not overhead. `workflow task sticky timeout` is a
workflow task that waited out its schedule-to-start timeout on the worker's
sticky queue (its wait until then): it is sent again on the normal queue, and
whichever worker takes it reads and replays the whole history.

Local activities (the judge of every look, a rollback's restore) run
inside a workflow task and leave one marker
each with the worker's completion time: `<activity> local` is the time from
the workflow task's start, or the previous local activity's completion in
it, to this one's (the workflow code between them included, which is small).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from bench.report import summary

_CLOSED = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity_task_completed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out_event_attributes",
}


def _seconds(event: HistoryEvent) -> float:
    return event.event_time.seconds + event.event_time.nanos / 1e9


def spans(events: Iterable[HistoryEvent]) -> dict[str, list[float]]:
    """Named latencies (seconds) of one history: `<activity> wait`, `<activity> run`,
    `workflow task wait`, `workflow task run`, `timer`."""
    out: dict[str, list[float]] = defaultdict(list)
    scheduled: dict[int, tuple[str, float]] = {}
    started: dict[int, float] = {}
    wft_scheduled: float | None = None
    wft_started: float | None = None
    timers: dict[int, float] = {}
    last_mark: float | None = None  # the workflow task's start, then each local activity's end
    for e in events:
        t = _seconds(e)
        kind = e.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[e.event_id] = (e.activity_task_scheduled_event_attributes.activity_type.name, t)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            sid = e.activity_task_started_event_attributes.scheduled_event_id
            if sid in scheduled:
                name, at = scheduled[sid]
                out[f"{name} wait"].append(t - at)
                started[sid] = t
        elif kind in _CLOSED:
            sid = getattr(e, _CLOSED[kind]).scheduled_event_id
            if sid in scheduled and sid in started:
                out[f"{scheduled[sid][0]} run"].append(t - started[sid])
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            wft_scheduled = t
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and wft_scheduled is not None:
            out["workflow task wait"].append(t - wft_scheduled)
            wft_started = last_mark = t
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT and wft_scheduled is not None:
            timed_out = e.workflow_task_timed_out_event_attributes.timeout_type
            if timed_out == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START:
                out["workflow task sticky timeout"].append(t - wft_scheduled)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and wft_started is not None:
            out["workflow task run"].append(t - wft_started)
        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            timers[e.event_id] = t
        elif kind == EventType.EVENT_TYPE_TIMER_FIRED:
            sid = e.timer_fired_event_attributes.started_event_id
            if sid in timers:
                out["timer"].append(t - timers[sid])
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED and last_mark is not None:
            local = _local_activity(e)
            if local is not None:
                name, done = local
                out[f"{name} local"].append(max(0.0, done - last_mark))
                last_mark = max(last_mark, done)
    return out


def _local_activity(event: HistoryEvent) -> tuple[str, float] | None:
    """(activity type, completion time) of a local activity's marker; None for other markers."""
    marker = event.marker_recorded_event_attributes
    if marker.marker_name != "core_local_activity" or "data" not in marker.details:
        return None
    try:
        data = json.loads(marker.details["data"].payloads[0].data)
        done = data["complete_time"]
        return str(data["activity_type"]), float(done["seconds"]) + float(done.get("nanos", 0)) / 1e9
    except (ValueError, KeyError, IndexError, TypeError):
        return None


async def breakdown(temporal: Client, ids: list[str], sample: int = 100) -> dict[str, dict[str, Any]]:
    """Latency summaries (and totals) per span name over up to `sample` of the rollouts' histories."""
    picked = ids[:: max(1, len(ids) // sample)][:sample]
    gate = asyncio.Semaphore(10)

    async def one(workflow_id: str) -> dict[str, list[float]]:
        async with gate:
            history = await temporal.get_workflow_handle(workflow_id).fetch_history()
        return spans(history.events)

    merged: dict[str, list[float]] = defaultdict(list)
    for got in await asyncio.gather(*(one(w) for w in picked), return_exceptions=True):
        if isinstance(got, BaseException):
            continue
        for name, values in got.items():
            merged[name].extend(values)
    return {
        name: {**summary(values), "total": sum(values), "rollouts": len(picked)}
        for name, values in sorted(merged.items())
    }


_NUMBERS = re.compile(r"\d+(\.\d+)?")


def reason_key(text: str | None) -> str:
    """A reason with its figures blanked, so rollouts stuck for the same cause group together."""
    if not text:
        return ""
    return _NUMBERS.sub("#", text.strip())[:160]
