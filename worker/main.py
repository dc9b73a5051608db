"""Skyline worker: runs RolloutWorkflow and every activity it schedules."""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities.cdn import CdnActivities, CdnProvider, CloudFrontInvalidator, VarnishPurger
from activities.manifests import ManifestActivities
from activities.metrics import MetricsActivities
from activities.publish import PublishActivities
from activities.storage import edge_client, s3_client
from skyline.settings import Settings, get_settings
from workflows.rollout import RolloutWorkflow

log = logging.getLogger("skyline.worker")


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )


def cdn_provider(settings: Settings) -> CdnProvider:
    if settings.cdn_provider == "cloudfront":
        if not settings.cloudfront_distribution_id:
            raise SystemExit("SKYLINE_CLOUDFRONT_DISTRIBUTION_ID is required with cdn_provider=cloudfront")
        client = boto3.client(
            "cloudfront",
            endpoint_url=settings.cloudfront_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.aws_access_key_id.get_secret_value(),
            aws_secret_access_key=settings.aws_secret_access_key.get_secret_value(),
        )
        return CloudFrontInvalidator(client, settings.cloudfront_distribution_id)
    return VarnishPurger(settings.purge_base_url, edge_client())


def activities(settings: Settings) -> list[Any]:
    s3 = s3_client(settings, max_pool=settings.worker_activity_threads + settings.upload_concurrency)
    http = edge_client()
    manifests = ManifestActivities(s3, settings.s3_bucket)
    cdn = CdnActivities(settings, cdn_provider(settings), http)
    publish = PublishActivities(settings, s3, http)
    metrics = MetricsActivities(settings.prometheus_url, settings.prometheus_timeout_seconds)
    return [
        manifests.prepare_rollout,
        manifests.apply_manifest_change,
        cdn.sync_manifest_to_edge,
        publish.publish_bundle,
        publish.verify_bundle_at_edge,
        metrics.query_canary_metrics,
    ]


def build_worker(client: Client, settings: Settings, executor: ThreadPoolExecutor) -> Worker:
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[RolloutWorkflow],
        activities=activities(settings),
        activity_executor=executor,
        max_concurrent_activities=settings.worker_activity_threads,
    )


async def main() -> None:
    settings = get_settings()
    client = await connect(settings)
    with ThreadPoolExecutor(max_workers=settings.worker_activity_threads) as executor:
        worker = build_worker(client, settings, executor)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with worker:
            log.info("worker polling %s on %s", settings.task_queue, settings.temporal_address)
            await stop.wait()
        # Leaving `async with` shuts down gracefully: running activities finish first.


def run() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(main())
