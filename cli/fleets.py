"""`skyline fleet …`: one unit version across many apartments, batch by batch."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from cli import render
from cli.client import Session, segment
from cli.help import MARKUP, HelpGroup
from cli.options import Actor, Interval, Reason, Timeout, default_actor, session
from cli.spec import (
    AnalysisInterval,
    Bake,
    BundleArchive,
    BundleDir,
    BundleOptions,
    ConfirmFirstUnit,
    Entry,
    Force,
    Framework,
    MaxErrorRate,
    MaxP99,
    MinRequests,
    SpecFile,
    Steps,
    Strategy,
    StrategyOptions,
    Upload,
    UploadId,
    Window,
    load_spec,
    start_body,
)
from cli.watch import follow_to_end

app = typer.Typer(
    help="Ship one unit version to many apartments in batches.",
    no_args_is_help=True,
    rich_markup_mode=MARKUP,
    cls=HelpGroup,
)

REQUIRED = {
    "building": "--building",
    "unit_id": "--unit",
    "version": "--version",
    "bundle": "--bundle-dir, --bundle-archive or --upload-id",
}

FleetArg = Annotated[
    str, typer.Argument(metavar="FLEET", help="fleet id (fleet.<building>.<unit>) or building/unit")
]


class OnFailure(StrEnum):
    keep = "keep"
    rollback_all = "rollback_all"


def fleet_ref(value: str) -> str:
    """`header/header` is short for the workflow id `fleet.header.header`."""
    if not value.startswith("fleet.") and value.count("/") == 1:
        building, unit = value.split("/")
        return f"fleet.{building}.{unit}"
    return value


def _apartment_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    apartments = [part.strip() for part in text.split(",") if part.strip()]
    if not apartments:
        raise typer.BadParameter("list apartments like shop,blog,docs", param_hint="--apartments")
    return apartments


@app.command(no_args_is_help=True)
def start(
    ctx: typer.Context,
    building: Annotated[
        str | None, typer.Option("--building", "-b", help="building in every apartment")
    ] = None,
    unit: Annotated[str | None, typer.Option("--unit", "-u", help="micro-frontend id (unit_id)")] = None,
    version: Annotated[str | None, typer.Option("--version", "-V", help="SemVer of the new build")] = None,
    apartments: Annotated[
        str | None,
        typer.Option(help="comma-separated apartments in order; default: every apartment using the unit"),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, max=100, help="apartments per batch")] = None,
    batch_pause: Annotated[
        float | None, typer.Option(min=0, help="seconds between batches (fleet promote skips the wait)")
    ] = None,
    on_failure: Annotated[
        OnFailure | None, typer.Option(help="apartments already done when one fails: keep or roll back")
    ] = None,
    max_duration: Annotated[
        float | None, typer.Option(min=1, help="progress deadline in seconds (paused time not counted)")
    ] = None,
    bundle_dir: BundleDir = None,
    bundle_archive: BundleArchive = None,
    upload: Upload = False,
    upload_id: UploadId = None,
    entry: Entry = None,
    framework: Framework = None,
    strategy: Strategy = None,
    steps: Steps = None,
    bake: Bake = None,
    interval: AnalysisInterval = None,
    window: Window = None,
    min_requests: MinRequests = None,
    max_error_rate: MaxErrorRate = None,
    max_p99: MaxP99 = None,
    confirm_first_unit: ConfirmFirstUnit = None,
    force: Force = False,
    reason: Annotated[
        str | None, typer.Option("--reason", "-r", help="why; recorded in the audit trail")
    ] = None,
    actor: Actor = None,
    spec: SpecFile = None,
    watch: Annotated[bool, typer.Option(help="then follow it like `fleet watch`")] = False,
    watch_interval: Interval = 1.0,
    watch_timeout: Timeout = None,
) -> None:
    """Start a fleet rollout: each apartment runs its own rollout (strategy, analysis), a batch at a time."""
    s = session(ctx)
    body = start_body(
        s.api,
        load_spec(spec),
        StrategyOptions(
            strategy.value if strategy else None,
            steps,
            bake,
            interval,
            window,
            min_requests,
            max_error_rate,
            max_p99,
            confirm_first_unit,
        ),
        BundleOptions(bundle_dir, bundle_archive, upload, upload_id),
        REQUIRED,
        default_actor(),
        building=building,
        unit_id=unit,
        version=version,
        apartments=_apartment_list(apartments),
        batch_size=batch_size,
        batch_pause_seconds=batch_pause,
        on_failure=on_failure.value if on_failure else None,
        max_duration_seconds=max_duration,
        entry=entry,
        framework=framework.value if framework else None,
        reason=reason,
        actor=actor,
        force=True if force else None,
    )
    created = s.api.post("/fleets", body)
    if watch:
        if not s.json:
            render.out().print(render.fleet_created(created))
        follow_fleet(s, created["id"], watch_interval, watch_timeout)
        return
    render.emit(s, created, render.fleet_created)


@app.command()
def get(ctx: typer.Context, fleet: FleetArg) -> None:
    """The fleet and every apartment's state (running ones with their live weight)."""
    s = session(ctx)
    render.emit(s, s.api.get(f"/fleets/{segment(fleet_ref(fleet))}"), render.fleet_view)


def _fleet_summary(status: dict[str, Any]) -> str:
    done = sum(1 for a in status["apartments"].values() if a["state"] == "succeeded")
    return f": {status['unit_id']}@{status['version']} in {done} of {len(status['apartments'])} apartments"


def follow_fleet(s: Session, fleet_id: str, interval: float, timeout: float | None) -> dict[str, Any]:
    path = f"/fleets/{segment(fleet_id)}"
    return follow_to_end(
        s, path, fleet_id, render.fleet_view, _fleet_summary, interval, timeout, show_weight=False
    )


@app.command()
def watch(ctx: typer.Context, fleet: FleetArg, interval: Interval = 1.0, timeout: Timeout = None) -> None:
    """Follow a fleet live until it ends: exit 0 succeeded, 3 rolled back or failed, 5 timed out."""
    follow_fleet(session(ctx), fleet_ref(fleet), interval, timeout)


def _control(ctx: typer.Context, fleet: str, action: str, reason: str, actor: str | None) -> None:
    s = session(ctx)
    body = {"actor": actor or default_actor(), "reason": reason}
    render.emit(s, s.api.post(f"/fleets/{segment(fleet_ref(fleet))}/{action}", body), render.fleet_view)


@app.command()
def pause(ctx: typer.Context, fleet: FleetArg, reason: Reason = "", actor: Actor = None) -> None:
    """No new batch starts; running apartments pause too."""
    _control(ctx, fleet, "pause", reason, actor)


@app.command()
def resume(ctx: typer.Context, fleet: FleetArg, reason: Reason = "", actor: Actor = None) -> None:
    """Continue a paused fleet (and its paused apartments)."""
    _control(ctx, fleet, "resume", reason, actor)


@app.command()
def promote(ctx: typer.Context, fleet: FleetArg, reason: Reason = "", actor: Actor = None) -> None:
    """Start the next batch now, without waiting out the pause between batches."""
    _control(ctx, fleet, "promote", reason, actor)


@app.command()
def rollback(ctx: typer.Context, fleet: FleetArg, reason: Reason = "", actor: Actor = None) -> None:
    """Every apartment of the fleet back to what it had before, running ones and those done."""
    _control(ctx, fleet, "rollback", reason, actor)
