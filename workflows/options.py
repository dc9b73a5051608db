"""Timeouts and retry policies for each kind of activity the rollout runs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.common import RetryPolicy

NON_RETRYABLE = ["InvalidRollout", "InvalidBundle", "ChecksumMismatch", "ManifestConflict"]

# Manifest writes and purges are small and must survive a storage or edge
# outage of minutes (the fault suite stops S3 for 20 s mid-step), so they
# retry quickly and often, bounded by schedule_to_close.
MANIFEST: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "schedule_to_close_timeout": timedelta(minutes=10),
    # Short: a write lost with a killed worker is retried within seconds, not at start_to_close.
    "heartbeat_timeout": timedelta(seconds=5),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=200),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=5),
        non_retryable_error_types=NON_RETRYABLE,
    ),
}

EDGE_SYNC: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=60),
    "schedule_to_close_timeout": timedelta(minutes=10),
    "heartbeat_timeout": timedelta(seconds=5),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=200),
        maximum_interval=timedelta(seconds=5),
    ),
}

# The emergency rollback's restore and edge sync run as local activities: in the
# workflow task itself, with no round trip through the server's task queues.
MANIFEST_LOCAL: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "schedule_to_close_timeout": timedelta(minutes=10),
    "retry_policy": MANIFEST["retry_policy"],
}
EDGE_SYNC_LOCAL: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=60),
    "schedule_to_close_timeout": timedelta(minutes=10),
    "retry_policy": EDGE_SYNC["retry_policy"],
}

# A write and its purge-and-verify as one activity (activities/emergency.py write_and_serve):
# the write's bound plus the edge's, the write's quick retries; it heartbeats in both halves.
WRITE_AND_SERVE: dict[str, Any] = {
    "start_to_close_timeout": MANIFEST["start_to_close_timeout"] + EDGE_SYNC["start_to_close_timeout"],
    "schedule_to_close_timeout": timedelta(minutes=10),
    "heartbeat_timeout": timedelta(seconds=5),
    "retry_policy": MANIFEST["retry_policy"],
}

PUBLISH: dict[str, Any] = {
    "start_to_close_timeout": timedelta(minutes=30),
    "heartbeat_timeout": timedelta(seconds=20),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=10,
        non_retryable_error_types=NON_RETRYABLE,
    ),
}

VERIFY: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=60),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_attempts=5,
        non_retryable_error_types=NON_RETRYABLE,
    ),
}

PREPARE: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=500),
        maximum_attempts=20,
        non_retryable_error_types=NON_RETRYABLE,
    ),
}

# Removing a bundle that never reached traffic: best effort, a few tries, then recorded.
UNPUBLISH: dict[str, Any] = {
    "start_to_close_timeout": timedelta(minutes=5),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_attempts=5,
        non_retryable_error_types=NON_RETRYABLE,
    ),
}

# Prometheus being down is evidence missing, not a reason to wait forever:
# a few quick tries, then the workflow counts the analysis as inconclusive.
METRICS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=500),
        backoff_coefficient=2.0,
        maximum_attempts=3,
    ),
}


def webhook(timeout_seconds: float, retries: int) -> dict[str, Any]:
    """Each webhook's own timeout and retry count, as the rollout spec sets them."""
    return {
        "start_to_close_timeout": timedelta(seconds=timeout_seconds + 5),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(milliseconds=500),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=10),
            maximum_attempts=retries + 1,
        ),
    }
