"""Publish a bundle and gate it (edge SRI, smoke) — shared by single and fleet rollouts."""

from __future__ import annotations

from collections.abc import Callable

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.gates import GateActivities, SmokeCheckInput
    from activities.publish import (
        PublishActivities,
        PublishBundleInput,
        PublishBundleResult,
        UnpublishBundleInput,
        VerifyBundleInput,
    )
    from skyline.manifest import Unit, UnitMetadata, unit_files
    from skyline.rollout import RolloutSpec
    from skyline.strategies import BlueGreenStrategy
    from workflows import options
    from workflows.hooks import cause
    from workflows.rollout_state import RolloutBook


async def publish_unit(
    spec: RolloutSpec,
    record: Callable[[str, str], None],
    published_at: Callable[[PublishBundleResult], None] | None = None,
) -> Unit:
    """Publish, check the entry at the edge (SRI, JavaScript); only then may traffic move.

    `published_at` learns where the bundle is as soon as it is in storage, so a
    caller can remove it if a later gate fails.
    """
    inp = PublishBundleInput(unit_id=spec.unit_id, version=spec.version, entry=spec.entry, source=spec.bundle)
    published = await workflow.execute_activity_method(
        PublishActivities.publish_bundle, inp, summary=f"publish {spec.unit_key}", **options.PUBLISH
    )
    if published_at is not None:
        published_at(published)
    await workflow.execute_activity_method(
        PublishActivities.verify_bundle_at_edge,
        VerifyBundleInput(entry_url=published.entry_url, integrity=published.integrity),
        summary="verify the entry at the edge",
        **options.VERIFY,
    )
    record(
        "published",
        f"{published.files} files ({published.uploaded} uploaded, {published.skipped} already "
        f"there) at {published.prefix}; edge serves {published.integrity}",
    )
    smoke_url = spec.smoke_url
    if isinstance(spec.strategy, BlueGreenStrategy):
        smoke_url = spec.strategy.smoke_url or smoke_url
    smoke = await workflow.execute_activity_method(
        GateActivities.smoke_check,
        SmokeCheckInput(entry_url=published.entry_url, integrity=published.integrity, smoke_url=smoke_url),
        summary="smoke gate: SRI and JavaScript",
        **options.VERIFY,
    )
    record("smoke passed", f"entry parses as JavaScript ({smoke.bytes} bytes)")
    # A Module Federation 2 remote publishes its container entry (mf-manifest.json), not spec.entry.
    entry = published.entry or spec.entry
    return Unit(
        id=spec.unit_key,
        name=spec.unit_id,
        version=spec.version,
        # An explicit framework wins; else what the bundle says (older workers: None -> unknown).
        framework=spec.framework or published.framework or "unknown",
        url=published.entry_url,
        checksum=published.integrity,
        size=published.size,
        dependencies=spec.dependencies,
        compatibility=spec.compatibility,
        status="canary",
        # every module and stylesheet with its SRI, for the loader (docs/loader.md)
        files=unit_files(
            entry, published.entry_url, published.entry_key, published.keys, published.file_integrity
        ),
        federation=published.federation,
        metadata=UnitMetadata(
            bundle_prefix=published.prefix,
            entry=entry,
            files=published.files,
            published_at=workflow.now().isoformat(),
        ),
    )


class PublishSteps(RolloutBook):
    """A rollout publishes its own bundle, and takes it back if no traffic ever saw it."""

    async def _publish(self) -> Unit:
        def published_at(result: PublishBundleResult) -> None:
            self._published = result

        return await publish_unit(
            self._spec, lambda action, reason: self._record(action, "skyline", reason), published_at
        )

    async def _unpublish_untrafficked(self) -> None:
        """A bundle this rollout published that never reached traffic does not stay public.

        Not a fleet's (it owns its bundle), and the activity keeps a prefix that any
        manifest revision references (an identical earlier build shares it).
        """
        published = self._published
        if published is None or self._prepublished is not None or self._status.revisions:
            return
        if not workflow.patched("unpublish-untrafficked"):
            return
        self._published, prefix = None, published.prefix
        shared = published.layout == "shared"
        try:
            result = await workflow.execute_activity_method(
                PublishActivities.unpublish_bundle,
                UnpublishBundleInput(
                    prefix=prefix,
                    # Every file uploaded by this rollout: only manifests written since can use them.
                    since=self._status.started_at if published.skipped == 0 else None,
                    keys=published.uploaded_keys if shared else None,
                    entry_key=published.entry_key if shared else None,
                ),
                summary=f"unpublish {prefix}",
                **options.UNPUBLISH,
            )
        except ActivityError as err:
            self._record("unpublish failed", "skyline", f"{prefix} left in storage: {cause(err)}")
            return
        if result.kept_reason:
            self._record("unpublish skipped", "skyline", f"{prefix} kept: {result.kept_reason}")
        else:
            self._record("unpublished", "skyline", f"{result.deleted} files removed from {prefix}")
