"""Activities that read and change an apartment's manifest."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.beat import beat
from activities.manifest_rules import (
    MissingRevision,
    fleet_restore,
    holds_unit,
    restore_kept,
    retry_base_hint,
    starting_point,
)
from activities.manifest_rules import (
    PrepareRolloutResult as PrepareRolloutResult,
)
from activities.manifest_rules import (
    RestoreFromRevisionInput as RestoreFromRevisionInput,
)
from activities.manifest_rules import (
    RestoreFromRevisionResult as RestoreFromRevisionResult,
)
from adapters.manifest_store import ManifestStore, preview_key, rollout_refusal
from skyline.manifest import ManifestChange
from skyline.manifest_ops import ManifestConflict, Mutation, RestoreApartment
from skyline.versioning import VersionRejected, check_unit_rules, check_upgrade

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class PrepareRolloutInput(BaseModel):
    apartment: str
    building: str
    unit_id: str
    version: str
    force: bool
    dependencies: list[str] = []
    compatibility: str = "*"


class ApplyManifestChangeInput(BaseModel):
    apartment: str
    change: ManifestChange
    mutation: Mutation


class ApplyManifestChangeResult(BaseModel):
    revision: int
    applied: bool


class WritePreviewInput(BaseModel):
    apartment: str
    change: ManifestChange
    mutation: Mutation


class WritePreviewResult(BaseModel):
    base_revision: int
    key: str


class ClearPreviewInput(BaseModel):
    apartment: str
    written: str = Field(description="change id of the preview this rollout wrote")
    change: ManifestChange


class ClearPreviewResult(BaseModel):
    cleared: bool
    revision: int | None = None
    key: str


class UndoToRevisionInput(BaseModel):
    apartment: str
    to_revision: int
    change: ManifestChange


class FindFleetInput(BaseModel):
    building: str
    unit_id: str
    apartments: list[str] | None


class ActiveUnitsInput(BaseModel):
    apartments: list[str]
    building: str


class ManifestActivities:
    def __init__(self, s3: S3Client, bucket: str) -> None:
        self.store = ManifestStore(s3, bucket)

    def _head(self, apartment: str) -> int | None:
        current = self.store.read(apartment)
        return current[0].revision if current else None

    @activity.defn
    def prepare_rollout(self, inp: PrepareRolloutInput) -> PrepareRolloutResult:
        """Re-check, at the moment the rollout starts, what the API validated."""
        found = rollout_refusal(inp.apartment, inp.building, self.store)
        if isinstance(found, str):
            raise ApplicationError(found, type="InvalidRollout", non_retryable=True)
        current = self.store.read(inp.apartment)
        assert current is not None
        start = starting_point(found, current[0].revision)
        try:
            check_upgrade(start.baseline_version, inp.version, inp.force)
            check_unit_rules(current[0].apartment(inp.apartment), inp.dependencies, inp.compatibility)
        except VersionRejected as exc:
            raise ApplicationError(str(exc), type="InvalidRollout", non_retryable=True) from exc
        return start

    @activity.defn
    def apply_manifest_change(self, inp: ApplyManifestChangeInput) -> ApplyManifestChangeResult:
        info = activity.info()
        base_hint = retry_base_hint(info.heartbeat_details, info.attempt, lambda: self._head(inp.apartment))
        try:
            manifest, applied = self.store.apply(
                inp.apartment,
                inp.mutation,
                inp.change,
                base_hint=base_hint,
                on_base=lambda base: beat(base),
            )
        except ManifestConflict as exc:
            raise ApplicationError(str(exc), type="ManifestConflict", non_retryable=True) from exc
        return ApplyManifestChangeResult(revision=manifest.revision, applied=applied)

    @activity.defn
    def write_preview_manifest(self, inp: WritePreviewInput) -> WritePreviewResult:
        try:
            preview = self.store.write_preview(inp.apartment, inp.mutation, inp.change)
        except ManifestConflict as exc:
            raise ApplicationError(str(exc), type="ManifestConflict", non_retryable=True) from exc
        return WritePreviewResult(base_revision=preview.revision, key=preview_key(inp.apartment))

    @activity.defn
    def clear_preview_manifest(self, inp: ClearPreviewInput) -> ClearPreviewResult:
        """After a blue-green ends, the preview serves production and says there is no candidate."""
        cleared = self.store.clear_preview(inp.apartment, inp.written, inp.change)
        return ClearPreviewResult(
            cleared=cleared is not None,
            revision=cleared.revision if cleared is not None else None,
            key=preview_key(inp.apartment),
        )

    @activity.defn
    def undo_to_revision(self, inp: UndoToRevisionInput) -> ApplyManifestChangeResult:
        """Write the apartment of an earlier revision as a new revision (history is never rewritten)."""
        target = self.store.read_revision(inp.apartment, inp.to_revision)
        if target is None:
            raise ApplicationError(
                f"apartment {inp.apartment!r} has no revision {inp.to_revision}",
                type="ManifestConflict",
                non_retryable=True,
            )
        mutation = RestoreApartment(apartment=target.apartment(inp.apartment), from_revision=inp.to_revision)
        details = activity.info().heartbeat_details
        manifest, applied = self.store.apply(
            inp.apartment,
            mutation,
            inp.change,
            base_hint=int(details[0]) if details else None,
            on_base=lambda base: beat(base),
        )
        return ApplyManifestChangeResult(revision=manifest.revision, applied=applied)

    @activity.defn
    def active_units(self, inp: ActiveUnitsInput) -> dict[str, str | None]:
        """Each apartment's active unit in the building now (None: no such apartment or building)."""
        active: dict[str, str | None] = {}
        for apartment in inp.apartments:
            current = self.store.read(apartment)
            building = current[0].apartment(apartment).buildings.get(inp.building) if current else None
            active[apartment] = building.active_unit if building is not None else None
        return active

    @activity.defn
    def find_fleet_apartments(self, inp: FindFleetInput) -> list[str]:
        """The listed apartments (each must have the building), or all whose building runs the unit."""
        if inp.apartments is not None:
            for apartment in inp.apartments:
                found = rollout_refusal(apartment, inp.building, self.store)
                if isinstance(found, str):
                    raise ApplicationError(found, type="InvalidRollout", non_retryable=True)
            return inp.apartments
        targets = []
        for apartment in self.store.list_apartments():
            current = self.store.read(apartment)
            if current is None:
                continue
            if holds_unit(current[0].apartment(apartment).buildings.get(inp.building), inp.unit_id):
                targets.append(apartment)
        if not targets:
            raise ApplicationError(
                f"no apartment has a {inp.building!r} building running {inp.unit_id!r}; "
                "list apartments explicitly",
                type="InvalidRollout",
                non_retryable=True,
            )
        return targets

    @activity.defn
    def restore_building_from_revision(self, inp: RestoreFromRevisionInput) -> RestoreFromRevisionResult:
        """Put a building back as an earlier revision had it (a fleet rolling back finished apartments)."""
        try:
            mutation = fleet_restore(inp, lambda revision: self.store.read_revision(inp.apartment, revision))
        except MissingRevision as exc:
            raise ApplicationError(str(exc), type="ManifestConflict", non_retryable=True) from exc
        details = activity.info().heartbeat_details
        try:
            manifest, applied = self.store.apply(
                inp.apartment,
                mutation,
                inp.change,
                base_hint=int(details[0]) if details else None,
                on_base=lambda base: beat(base),
            )
        except ManifestConflict as exc:
            if inp.only_if_active is None:
                raise ApplicationError(str(exc), type="ManifestConflict", non_retryable=True) from exc
            head = self.store.read(inp.apartment)
            return restore_kept(str(exc), head[0] if head else None)
        return RestoreFromRevisionResult(revision=manifest.revision, applied=applied)
