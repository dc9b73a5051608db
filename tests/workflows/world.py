"""Stand-in activities for the fast workflow layer: a small in-memory world.

Each stand-in is registered under the real activity's name (samples-python
style, `@activity.defn(name=...)`), so RolloutWorkflow and FleetRolloutWorkflow
run unchanged on Temporal's time-skipping test server. Manifests change through
the real pure `apply_mutation` (skyline/manifest_ops.py), so what a test reads
back is what the real store would hold; the judge runs for real too (it is a
pure local activity). Traffic is a script: `World.traffic` gives the figures of
each look.

These tests complement the end-to-end tests on real servers; they do not
replace them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.cdn import SyncManifestInput, SyncManifestResult
from activities.emergency import RestoreAndServeResult
from activities.gates import SmokeCheckInput, SmokeCheckResult, WebhookInput
from activities.judging import judge_step_look
from activities.manifest_rules import fleet_restore, restore_kept, starting_point
from activities.manifests import (
    ActiveUnitsInput,
    ApplyManifestChangeInput,
    ApplyManifestChangeResult,
    ClearPreviewInput,
    ClearPreviewResult,
    FindFleetInput,
    PrepareRolloutInput,
    PrepareRolloutResult,
    RestoreFromRevisionInput,
    RestoreFromRevisionResult,
    WritePreviewInput,
    WritePreviewResult,
)
from activities.metrics import GatherFiguresInput, GatherFiguresResult
from activities.publish import (
    PublishBundleInput,
    PublishBundleResult,
    UnpublishBundleInput,
    UnpublishBundleResult,
    VerifyBundleInput,
    VerifyBundleResult,
)
from skyline.figures import Figures, Look
from skyline.manifest import Apartment, ApartmentManifest, Building, ManifestChange, Unit, unit_key
from skyline.manifest_ops import CreateApartment, ManifestConflict, apply_mutation

Traffic = Callable[[GatherFiguresInput, float], GatherFiguresResult]


def stable_unit(name: str, version: str) -> Unit:
    return Unit(
        id=unit_key(name, version),
        name=name,
        version=version,
        url=f"https://cdn.example/{name}/{version}/index.js",
        checksum="sha384-stable",
        size=100,
    )


def figures(loads: int, errors: int = 0, slow_share: float = 0.3) -> Figures:
    ok = loads - errors
    fast = round(ok * (1 - slow_share))
    return Figures(
        loads=loads,
        errors=errors,
        load_seconds={"0.1": fast * 0.5, "0.25": float(fast), "0.5": float(ok), "+Inf": float(ok)},
    )


def healthy(per_second: float = 100.0, error_ratio: float = 0.01) -> Traffic:
    """Both variants alike: the canary gets its weight's share of `per_second` loads."""

    def script(inp: GatherFiguresInput, weight: float) -> GatherFiguresResult:
        total = per_second * inp.since_seconds
        c = round(total * weight / 100)
        b = round(total) - c
        canary = figures(c, round(c * error_ratio))
        baseline = figures(b, round(b * error_ratio)) if inp.baseline_version and b else None
        reference = None
        if inp.baseline_version and inp.reference_offset_seconds is not None:
            hour = round(per_second * 3600)  # the hour before the rollout, all on the baseline
            reference = figures(hour, round(hour * error_ratio))
        return GatherFiguresResult(
            look=Look(at_seconds=inp.at_seconds, canary=canary, baseline=baseline), reference=reference
        )

    return script


def failing(per_second: float = 100.0) -> Traffic:
    """The canary fails 40 % of its loads; the baseline 1 %."""

    def script(inp: GatherFiguresInput, weight: float) -> GatherFiguresResult:
        total = per_second * inp.since_seconds
        c = max(40, round(total * weight / 100))
        b = round(total)
        return GatherFiguresResult(
            look=Look(
                at_seconds=inp.at_seconds,
                canary=figures(c, round(c * 0.4)),
                baseline=figures(b, round(b * 0.01)) if inp.baseline_version else None,
            )
        )

    return script


@dataclass
class World:
    manifests: dict[str, list[ApartmentManifest]] = field(default_factory=dict)
    traffic: Traffic = field(default_factory=healthy)
    webhook_status: dict[str, int] = field(default_factory=dict)  # event -> HTTP status (default 200)
    calls: list[str] = field(default_factory=list)
    # set to hold a manifest write until a test releases it (e.g. to act "during" a promotion)
    hold_writes: Callable[[ApplyManifestChangeInput], bool] | None = None
    released: asyncio.Event = field(default_factory=asyncio.Event)
    writes_held: asyncio.Event = field(default_factory=asyncio.Event)

    # ----- the test's view ---------------------------------------------------------------

    def create(
        self, apartment: str, active: str | None = "1.0.0", buildings: tuple[str, ...] = ("header",)
    ) -> None:
        built: dict[str, Building] = {}
        for name in buildings:
            building = Building(name=name.title(), category="header" if name == "header" else "main")
            if active:
                unit = stable_unit(name, active)
                building = building.model_copy(update={"active_unit": unit.id, "units": {unit.id: unit}})
            built[name] = building
        manifest = apply_mutation(
            None,
            apartment,
            CreateApartment(apartment=Apartment(name=apartment, buildings=built)),
            ManifestChange(id=f"create/{apartment}", actor="tests", reason=""),
            _now(),
        )
        self.manifests[apartment] = [manifest]

    def head(self, apartment: str) -> ApartmentManifest:
        return self.manifests[apartment][-1]

    def building(self, apartment: str, name: str = "header") -> Building:
        return self.head(apartment).apartments[apartment].buildings[name]

    def write(self, apartment: str, mutation: Any, why: str = "test") -> int:
        """A change made outside the workflow under test (another rollout, a hotfix)."""
        change = ManifestChange(id=f"outside/{len(self.calls)}", actor="someone", reason=why)
        nxt = apply_mutation(self.head(apartment), apartment, mutation, change, _now())
        self.manifests[apartment].append(nxt)
        return nxt.revision

    # ----- the stand-ins ------------------------------------------------------------------

    def activities(self) -> list[Callable[..., Any]]:
        world = self

        # Real twin: tests/activities/test_real_restore_rules.py::
        # test_rollback_restores_the_last_known_good_building_and_the_edge_serves_it (the snapshot).
        @activity.defn(name="prepare_rollout")
        async def prepare_rollout(inp: PrepareRolloutInput) -> PrepareRolloutResult:
            world.calls.append("prepare_rollout")
            head = world.head(inp.apartment)
            # The real activity's rule (activities/manifest_rules.py), over this world's head.
            return starting_point(head.apartments[inp.apartment].buildings[inp.building], head.revision)

        @activity.defn(name="publish_bundle")
        async def publish_bundle(inp: PublishBundleInput) -> PublishBundleResult:
            world.calls.append("publish_bundle")
            prefix = f"bundles/{inp.unit_id}/{inp.version}/"
            return PublishBundleResult(
                prefix=prefix,
                entry_url=f"https://edge.example/{prefix}{inp.entry}",
                integrity="sha384-test",
                size=100,
                files=1,
                uploaded=1,
                skipped=0,
            )

        @activity.defn(name="verify_bundle_at_edge")
        async def verify_bundle_at_edge(inp: VerifyBundleInput) -> VerifyBundleResult:
            world.calls.append("verify_bundle_at_edge")
            return VerifyBundleResult(attempts=1, bytes=100)

        @activity.defn(name="smoke_check")
        async def smoke_check(inp: SmokeCheckInput) -> SmokeCheckResult:
            world.calls.append("smoke_check")
            return SmokeCheckResult(bytes=100, smoke_status=None)

        @activity.defn(name="unpublish_bundle")
        async def unpublish_bundle(inp: UnpublishBundleInput) -> UnpublishBundleResult:
            world.calls.append("unpublish_bundle")
            return UnpublishBundleResult(deleted=1)

        @activity.defn(name="call_webhook")
        async def call_webhook(inp: WebhookInput) -> None:
            world.calls.append(f"webhook {inp.event}")
            status = world.webhook_status.get(inp.event, 200)
            if status >= 300:
                raise ApplicationError(f"answered {status}", non_retryable=True)

        # Real twin: tests/activities/test_real_restore_rules.py::
        # test_the_promotion_write_makes_the_canary_active_once (the promotion write, retried).
        @activity.defn(name="apply_manifest_change")
        async def apply_manifest_change(inp: ApplyManifestChangeInput) -> ApplyManifestChangeResult:
            world.calls.append(f"write {inp.mutation.kind}")
            if world.hold_writes is not None and world.hold_writes(inp):
                world.writes_held.set()
                await world.released.wait()
            nxt = apply_mutation(world.head(inp.apartment), inp.apartment, inp.mutation, inp.change, _now())
            world.manifests[inp.apartment].append(nxt)
            return ApplyManifestChangeResult(revision=nxt.revision, applied=True)

        @activity.defn(name="sync_manifest_to_edge")
        async def sync_manifest_to_edge(inp: SyncManifestInput) -> SyncManifestResult:
            world.calls.append("sync")
            return SyncManifestResult(served_revision=inp.revision, purges=1, reads=1)

        # Real twin: tests/activities/test_real_restore_rules.py::
        # test_rollback_restores_the_last_known_good_building_and_the_edge_serves_it.
        @activity.defn(name="restore_and_serve")
        async def restore_and_serve(inp: ApplyManifestChangeInput) -> RestoreAndServeResult:
            written = await apply_manifest_change(inp)
            served = await sync_manifest_to_edge(
                SyncManifestInput(apartment=inp.apartment, revision=written.revision)
            )
            return RestoreAndServeResult(
                revision=written.revision, applied=True, served_revision=served.served_revision, purges=1
            )

        # Real twin: tests/activities/test_write_and_serve.py (the step write, retried).
        @activity.defn(name="write_and_serve")
        async def write_and_serve(inp: ApplyManifestChangeInput) -> RestoreAndServeResult:
            return await restore_and_serve(inp)

        @activity.defn(name="gather_figures")
        async def gather_figures(inp: GatherFiguresInput) -> GatherFiguresResult:
            world.calls.append("gather")
            building = world.building(inp.apartment, inp.building)
            unit = building.units.get(unit_key(inp.unit, inp.canary_version))
            weight = unit.rollout.percentage if unit and unit.rollout else 100.0
            return world.traffic(inp, weight)

        @activity.defn(name="write_preview_manifest")
        async def write_preview_manifest(inp: WritePreviewInput) -> WritePreviewResult:
            world.calls.append("write preview")
            return WritePreviewResult(
                base_revision=world.head(inp.apartment).revision,
                key=f"manifests/{inp.apartment}/preview.json",
            )

        @activity.defn(name="clear_preview_manifest")
        async def clear_preview_manifest(inp: ClearPreviewInput) -> ClearPreviewResult:
            world.calls.append("clear preview")
            return ClearPreviewResult(cleared=False, key=f"manifests/{inp.apartment}/preview.json")

        @activity.defn(name="delete_schedule")
        async def delete_schedule(schedule_id: str) -> None:
            world.calls.append("delete schedule")

        @activity.defn(name="find_fleet_apartments")
        async def find_fleet_apartments(inp: FindFleetInput) -> list[str]:
            world.calls.append("find fleet")
            return sorted(a for a in world.manifests if inp.apartments is None or a in inp.apartments)

        # Real twin: tests/activities/test_real_restore_rules.py::
        # test_active_units_reads_each_apartments_active_unit_now.
        @activity.defn(name="active_units")
        async def active_units(inp: ActiveUnitsInput) -> dict[str, str | None]:
            world.calls.append("active units")
            return {a: world.building(a, inp.building).active_unit for a in inp.apartments}

        # Rules (shared with the real activity, fast tests in tests/skyline/test_manifest_rules.py): read
        # `inp.revision` (the revision before the fleet), restore only while the building holds
        # `only_if_active`. Real twins: tests/activities/test_real_restore_rules.py::
        # test_fleet_restore_puts_the_building_back_as_it_was_before_the_fleet,
        # test_fleet_restore_keeps_a_later_hotfix_by_another_rollout and
        # test_fleet_restore_keeps_another_rollouts_canary_in_flight.
        @activity.defn(name="restore_building_from_revision")
        async def restore_building_from_revision(inp: RestoreFromRevisionInput) -> RestoreFromRevisionResult:
            world.calls.append(f"restore {inp.apartment}")
            # The real activity's rules (activities/manifest_rules.py), over this world's history.
            mutation = fleet_restore(inp, lambda revision: world.manifests[inp.apartment][revision - 1])
            try:
                nxt = apply_mutation(world.head(inp.apartment), inp.apartment, mutation, inp.change, _now())
            except ManifestConflict as exc:
                return restore_kept(str(exc), world.head(inp.apartment))
            world.manifests[inp.apartment].append(nxt)
            return RestoreFromRevisionResult(revision=nxt.revision, applied=True)

        return [
            prepare_rollout,
            publish_bundle,
            verify_bundle_at_edge,
            smoke_check,
            unpublish_bundle,
            call_webhook,
            apply_manifest_change,
            sync_manifest_to_edge,
            restore_and_serve,
            write_and_serve,
            gather_figures,
            judge_step_look,
            write_preview_manifest,
            clear_preview_manifest,
            delete_schedule,
            find_fleet_apartments,
            restore_building_from_revision,
            active_units,
        ]


def _now() -> str:
    return datetime.now(UTC).isoformat()
