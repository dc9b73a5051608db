"""Where the concurrency benchmark says a rollout's time went (bench/timeline.py), on a hand-made history.

The issue's question ("where does the time go") is answered from these spans, so what they count
is tested: an activity's wait is scheduled -> started (the queue's backlog), its run started -> closed
(a failed attempt counts too), workflow tasks likewise, and reasons group once their figures are blanked.
"""

from __future__ import annotations

import json

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from bench.timeline import reason_key, spans


def _event(event_id: int, kind: EventType.ValueType, at: float, **attrs: object) -> HistoryEvent:
    event = HistoryEvent(
        event_id=event_id, event_type=kind, event_time=Timestamp(seconds=int(at), nanos=round(at % 1 * 1e9))
    )
    for name, value in attrs.items():
        getattr(event, name).MergeFrom(value)
    return event


def test_activity_wait_and_run_and_workflow_tasks() -> None:
    from temporalio.api.common.v1 import ActivityType
    from temporalio.api.history.v1 import (
        ActivityTaskCompletedEventAttributes,
        ActivityTaskFailedEventAttributes,
        ActivityTaskScheduledEventAttributes,
        ActivityTaskStartedEventAttributes,
    )

    E = EventType
    history = [
        _event(1, E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, 100.0),
        _event(2, E.EVENT_TYPE_WORKFLOW_TASK_STARTED, 100.5),
        _event(3, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 100.75),
        _event(
            4,
            E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
            101.0,
            activity_task_scheduled_event_attributes=ActivityTaskScheduledEventAttributes(
                activity_type=ActivityType(name="gather_figures")
            ),
        ),
        _event(
            5,
            E.EVENT_TYPE_ACTIVITY_TASK_STARTED,
            104.0,
            activity_task_started_event_attributes=ActivityTaskStartedEventAttributes(scheduled_event_id=4),
        ),
        _event(
            6,
            E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
            104.5,
            activity_task_completed_event_attributes=ActivityTaskCompletedEventAttributes(
                scheduled_event_id=4
            ),
        ),
        _event(
            7,
            E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
            105.0,
            activity_task_scheduled_event_attributes=ActivityTaskScheduledEventAttributes(
                activity_type=ActivityType(name="publish_bundle")
            ),
        ),
        _event(
            8,
            E.EVENT_TYPE_ACTIVITY_TASK_STARTED,
            105.25,
            activity_task_started_event_attributes=ActivityTaskStartedEventAttributes(scheduled_event_id=7),
        ),
        _event(
            9,
            E.EVENT_TYPE_ACTIVITY_TASK_FAILED,
            107.25,
            activity_task_failed_event_attributes=ActivityTaskFailedEventAttributes(scheduled_event_id=7),
        ),
    ]
    got = spans(history)
    assert got["workflow task wait"] == [0.5]
    assert got["workflow task run"] == [0.25]
    assert got["gather_figures wait"] == [3.0]
    assert got["gather_figures run"] == [0.5]
    assert got["publish_bundle wait"] == [0.25]
    assert got["publish_bundle run"] == [2.0]


def test_reasons_group_once_their_figures_are_blanked() -> None:
    a = reason_key("held: only 3 canary loads in this step, need 5 (send traffic, or set min_requests)")
    b = reason_key("held: only 0 canary loads in this step, need 5 (send traffic, or set min_requests)")
    assert a == b
    assert "#" in a
    assert reason_key(None) == ""


def _marker(event_id: int, at: float, activity_type: str, done: float) -> HistoryEvent:
    from temporalio.api.common.v1 import Payload, Payloads
    from temporalio.api.history.v1 import MarkerRecordedEventAttributes

    data = {
        "seq": event_id,
        "attempt": 1,
        "activity_type": activity_type,
        "complete_time": {"seconds": int(done), "nanos": round(done % 1 * 1e9)},
    }
    attrs = MarkerRecordedEventAttributes(marker_name="core_local_activity")
    attrs.details["data"].CopyFrom(Payloads(payloads=[Payload(data=json.dumps(data).encode())]))
    return _event(event_id, EventType.EVENT_TYPE_MARKER_RECORDED, at, marker_recorded_event_attributes=attrs)


def test_local_activities_are_timed_from_the_workflow_task_or_the_one_before() -> None:
    from temporalio.api.history.v1 import MarkerRecordedEventAttributes

    E = EventType
    history = [
        _event(1, E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, 100.0),
        _event(2, E.EVENT_TYPE_WORKFLOW_TASK_STARTED, 100.25),
        _event(3, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 101.5),
        # a judgement, then the rollback it led to, in the same workflow task
        _marker(4, 101.5, "judge_step_look", 100.75),
        _marker(5, 101.5, "restore_and_serve", 101.25),
        # other markers (patches) are not local activities
        _event(
            6,
            E.EVENT_TYPE_MARKER_RECORDED,
            101.5,
            marker_recorded_event_attributes=MarkerRecordedEventAttributes(marker_name="core_patch"),
        ),
        _event(7, E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, 102.0),
        _event(8, E.EVENT_TYPE_WORKFLOW_TASK_STARTED, 102.5),
        _event(9, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 103.0),
        _marker(10, 103.0, "judge_step_look", 102.75),
    ]
    got = spans(history)
    assert got["judge_step_look local"] == [0.5, 0.25]
    assert got["restore_and_serve local"] == [0.5]
    assert got["workflow task run"] == [1.25, 0.5]
    assert len(got) == 4  # no span for the patch marker


def test_a_workflow_task_that_times_out_on_the_sticky_queue_is_counted() -> None:
    from temporalio.api.enums.v1 import TimeoutType
    from temporalio.api.history.v1 import WorkflowTaskTimedOutEventAttributes

    E = EventType

    def timed_out(event_id: int, at: float, kind: TimeoutType.ValueType) -> HistoryEvent:
        attrs = WorkflowTaskTimedOutEventAttributes(scheduled_event_id=event_id - 1, timeout_type=kind)
        return _event(
            event_id, E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT, at, workflow_task_timed_out_event_attributes=attrs
        )

    history = [
        _event(1, E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, 100.0),
        timed_out(2, 110.0, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START),
        # sent again on the normal queue
        _event(3, E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, 110.0),
        _event(4, E.EVENT_TYPE_WORKFLOW_TASK_STARTED, 112.0),
        # a worker that took a task and did not answer in time is not a sticky timeout
        timed_out(5, 122.0, TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE),
        _event(6, E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, 122.0),
        _event(7, E.EVENT_TYPE_WORKFLOW_TASK_STARTED, 122.5),
        _event(8, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 123.0),
    ]
    got = spans(history)
    assert got["workflow task sticky timeout"] == [10.0]
    assert got["workflow task wait"] == [2.0, 0.5]
    assert got["workflow task run"] == [0.5]
