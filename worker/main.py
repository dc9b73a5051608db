"""Skyline worker: runs RolloutWorkflow and every activity it schedules.

Stateless: run as many as you like on one task queue (`docker compose up
--scale worker=3`); Temporal hands each task to one of them. On SIGTERM it
stops polling and lets running activities finish (up to
`worker_graceful_shutdown_seconds`), so a rolling upgrade loses no work.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import (
    PollerBehaviorSimpleMaximum,
    UnsandboxedWorkflowRunner,
    Worker,
)

from activities.cdn import CdnActivities
from activities.emergency import EmergencyActivities
from activities.gates import GateActivities
from activities.judging import judge_step_look
from activities.manifests import ManifestActivities
from activities.metrics import MetricsActivities
from activities.publish import PublishActivities
from activities.schedules import ScheduleActivities
from adapters.cdn import CdnConfigError, make_cdn_provider
from adapters.evidence import EvidenceReader
from adapters.pins import temporal_alive
from adapters.storage import edge_client, s3_client
from adapters.temporal import connect
from skyline import control_proof
from skyline.observability import ActivityTelemetry, configure_logging, worker_runtime
from skyline.settings import Settings, get_settings
from worker.sandbox import CompiledSandboxRunner
from worker.search_attributes import ensure_search_attributes
from workflows.fleet import FleetRolloutWorkflow
from workflows.pipeline import ReleasePipelineWorkflow
from workflows.promotion import PromotionWorkflow
from workflows.rollout import RolloutWorkflow
from workflows.undo import ManifestUndoWorkflow

log = logging.getLogger("skyline.worker")


def activities(settings: Settings, client: Client) -> list[Any]:
    s3 = s3_client(settings, max_pool=settings.worker_activity_threads + settings.upload_concurrency)
    http = edge_client()
    manifests = ManifestActivities(s3, settings.s3_bucket)
    provider = make_cdn_provider(settings, http)
    cdn = CdnActivities(settings, provider, http)
    emergency = EmergencyActivities(manifests, cdn)
    try:  # pins of ended workflows must not keep an untrafficked bundle forever (adapters/pins.py)
        alive = temporal_alive(client, asyncio.get_running_loop())
    except RuntimeError:  # built outside the worker's loop (tests): every pin counts
        alive = None
    publish = PublishActivities(settings, s3, http, provider, alive)
    metrics = MetricsActivities(
        settings.prometheus_url,
        settings.prometheus_timeout_seconds,
        settings.prometheus_settle_seconds,
        EvidenceReader(settings.redis_url) if settings.redis_url else None,
    )
    secret = settings.webhook_secret.get_secret_value().encode() if settings.webhook_secret else None
    gates = GateActivities(http, secret, settings.webhook_allowed_hosts)
    schedules = ScheduleActivities(client, manifests.store, settings.control_keys)
    return [
        manifests.prepare_rollout,
        manifests.apply_manifest_change,
        cdn.sync_manifest_to_edge,
        emergency.write_and_serve,
        emergency.restore_and_serve,
        publish.publish_bundle,
        publish.verify_bundle_at_edge,
        publish.unpublish_bundle,
        metrics.run_analysis,
        metrics.gather_figures,
        judge_step_look,
        gates.smoke_check,
        gates.call_webhook,
        manifests.write_preview_manifest,
        manifests.clear_preview_manifest,
        manifests.undo_to_revision,
        manifests.find_fleet_apartments,
        manifests.active_units,
        manifests.restore_building_from_revision,
        schedules.check_promotion,
        schedules.promote_rollout,
        schedules.delete_schedule,
    ]


# Also what the replay suite replays saved histories against.
WORKFLOWS: list[type] = [
    RolloutWorkflow,
    FleetRolloutWorkflow,
    ManifestUndoWorkflow,
    PromotionWorkflow,
    ReleasePipelineWorkflow,
]


def build_worker(client: Client, settings: Settings, executor: ThreadPoolExecutor) -> Worker:
    # The update validators check the API's control proofs with these keys (never in a history).
    control_proof.hold(settings.control_keys)
    if not settings.control_keys:
        log.warning(
            "SKYLINE_CONTROL_KEY is not set: controls from the API are refused as unproven; "
            "set the same key for the API and the worker"
        )
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=activities(settings, client),
        activity_executor=executor,
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_local_activities=settings.worker_max_concurrent_local_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        max_cached_workflows=settings.worker_max_cached_workflows,
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=settings.worker_sticky_timeout_seconds),
        workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(
            min(settings.worker_workflow_task_pollers, settings.worker_max_concurrent_workflow_tasks)
        ),
        activity_task_poller_behavior=PollerBehaviorSimpleMaximum(
            min(settings.worker_activity_task_pollers, settings.worker_max_concurrent_activities)
        ),
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_graceful_shutdown_seconds),
        interceptors=[ActivityTelemetry()],
        workflow_runner=CompiledSandboxRunner() if settings.worker_sandbox else UnsandboxedWorkflowRunner(),
    )


def metrics_runtime(settings: Settings) -> Runtime | None:
    """The Temporal runtime exporting worker metrics, or None (metrics off or port taken)."""
    if not settings.worker_metrics_address:
        return None
    try:
        return worker_runtime(settings.worker_metrics_address)
    except Exception as exc:  # metrics must never keep rollouts from running
        log.error("worker metrics disabled: cannot serve %s: %s", settings.worker_metrics_address, exc)
        return None


async def main() -> None:
    settings = get_settings()
    client = await connect(settings, metrics_runtime(settings))
    added = await ensure_search_attributes(client, settings.temporal_namespace)
    if added:
        log.info("registered search attributes %s", ", ".join(added))
    # Sync activities, regular and local: one thread per slot, so no slot waits for a thread.
    with ThreadPoolExecutor(
        max_workers=settings.worker_activity_threads, thread_name_prefix="activity"
    ) as executor:
        try:
            worker = build_worker(client, settings, executor)
        except CdnConfigError as exc:
            raise SystemExit(f"error: {exc}") from exc
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with worker:
            log.info(
                "worker polling %s on %s (%d activity slots, %d local activity slots, "
                "%d workflow task slots, %d/%d pollers, "
                "%d cached workflows, metrics %s)",
                settings.task_queue,
                settings.temporal_address,
                settings.worker_max_concurrent_activities,
                settings.worker_max_concurrent_local_activities,
                settings.worker_max_concurrent_workflow_tasks,
                settings.worker_activity_task_pollers,
                settings.worker_workflow_task_pollers,
                settings.worker_max_cached_workflows,
                settings.worker_metrics_address or "off",
            )
            await stop.wait()
            log.info(
                "stopping: no new tasks; running activities get up to %g s to finish",
                settings.worker_graceful_shutdown_seconds,
            )
        log.info("worker stopped")


def run() -> None:
    configure_logging(get_settings())
    asyncio.run(main())
    # Everything is shut down and flushed. Temporal's Rust threads can outlive
    # interpreter teardown and abort it (SIGABRT, temporalio/sdk-python#300),
    # which would turn a clean stop into a crash: skip the teardown.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
