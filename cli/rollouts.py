"""`skyline rollout …`: start, list, inspect, follow and steer rollouts."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

import typer

from cli import render
from cli.client import segment
from cli.help import MARKUP, HelpGroup
from cli.options import Actor, Interval, Reason, RolloutArg, Timeout, default_actor, rollout_ref, session
from cli.spec import (
    REQUIRED,
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
from cli.watch import follow

app = typer.Typer(
    help="Start, list, inspect, follow and steer rollouts.",
    no_args_is_help=True,
    rich_markup_mode=MARKUP,
    cls=HelpGroup,
)


class PromotionMode(StrEnum):
    automatic = "automatic"
    scheduled = "scheduled"


class State(StrEnum):
    publishing = "publishing"
    progressing = "progressing"
    paused = "paused"
    promoting = "promoting"
    rolled_back = "rolled_back"
    succeeded = "succeeded"
    failed = "failed"


@app.command(no_args_is_help=True)
def start(
    ctx: typer.Context,
    apartment: Annotated[
        str | None, typer.Option("--apartment", "-a", help="apartment (shell app) id")
    ] = None,
    building: Annotated[
        str | None, typer.Option("--building", "-b", help="building to roll out into")
    ] = None,
    unit: Annotated[str | None, typer.Option("--unit", "-u", help="micro-frontend id (unit_id)")] = None,
    version: Annotated[str | None, typer.Option("--version", "-V", help="SemVer of the new build")] = None,
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
    promotion: Annotated[
        PromotionMode | None, typer.Option(help="scheduled: hold after the last step for a schedule")
    ] = None,
    cron: Annotated[str | None, typer.Option(help="with --promotion scheduled: e.g. '0 10 * * 1-5'")] = None,
    timezone: Annotated[
        str | None, typer.Option(help="IANA zone the cron is read in, e.g. Europe/Berlin")
    ] = None,
    start_at: Annotated[str | None, typer.Option(help="start later: ISO 8601 time with a zone")] = None,
    smoke_url: Annotated[str | None, typer.Option(help="must answer 2xx before traffic moves")] = None,
    force: Force = False,
    reason: Annotated[
        str | None, typer.Option("--reason", "-r", help="why; recorded in the audit trail")
    ] = None,
    actor: Actor = None,
    spec: SpecFile = None,
    watch: Annotated[bool, typer.Option(help="then follow it like `rollout watch`")] = False,
    watch_interval: Interval = 1.0,
    watch_timeout: Timeout = None,
) -> None:
    """Start a rollout of one unit version into one building."""
    s = session(ctx)
    body = load_spec(spec)
    promotion_body = dict(body.get("promotion") or {})
    if promotion is not None:
        promotion_body["mode"] = promotion.value
    if cron is not None:
        promotion_body["cron"] = cron
    if timezone is not None:
        promotion_body["timezone"] = timezone
    if promotion_body.get("cron") and promotion_body.get("mode", "automatic") != "scheduled":
        raise typer.BadParameter("--cron needs --promotion scheduled", param_hint="--cron")
    body = start_body(
        s.api,
        body,
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
        apartment=apartment,
        building=building,
        unit_id=unit,
        version=version,
        entry=entry,
        framework=framework.value if framework else None,
        start_at=start_at,
        smoke_url=smoke_url,
        reason=reason,
        actor=actor,
        force=True if force else None,
        promotion=promotion_body or None,
    )
    created = s.api.post("/rollouts", body)
    if watch:
        if not s.json:
            render.out().print(render.rollout_created(created))
        follow(s, created["id"], watch_interval, watch_timeout)
        return
    render.emit(s, created, render.rollout_created)


@app.command("list")
def list_(
    ctx: typer.Context,
    apartment: Annotated[str | None, typer.Option("--apartment", "-a")] = None,
    building: Annotated[str | None, typer.Option("--building", "-b")] = None,
    state: Annotated[State | None, typer.Option("--state", "-s")] = None,
    version: Annotated[str | None, typer.Option("--version", "-V")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
) -> None:
    """Rollouts, newest first, from Temporal visibility."""
    s = session(ctx)
    rows = s.api.get(
        "/rollouts",
        apartment=apartment,
        building=building,
        state=state.value if state else None,
        version=version,
        limit=limit,
    )
    render.emit(s, rows, render.rollouts_table)


@app.command()
def get(ctx: typer.Context, rollout: RolloutArg) -> None:
    """State, step, weight, latest analysis of one rollout."""
    s = session(ctx)
    render.emit(s, s.api.get(f"/rollouts/{segment(rollout_ref(rollout))}"), render.status_view)


@app.command()
def watch(ctx: typer.Context, rollout: RolloutArg, interval: Interval = 1.0, timeout: Timeout = None) -> None:
    """Follow a rollout live until it ends: exit 0 succeeded, 3 rolled back or failed, 5 timed out."""
    follow(session(ctx), rollout_ref(rollout), interval, timeout)


@app.command()
def looks(
    ctx: typer.Context,
    rollout: RolloutArg,
    step: Annotated[int | None, typer.Option("--step", help="only this step (0-based)")] = None,
) -> None:
    """Export the judge's looks as step documents (JSON Lines), for `skyline judge replay -`."""
    s = session(ctx)
    params = {} if step is None else {"step": step}
    docs = s.api.get(f"/rollouts/{segment(rollout_ref(rollout))}/looks", **params)
    for doc in docs:
        typer.echo(json.dumps(doc))


@app.command()
def audit(ctx: typer.Context, rollout: RolloutArg) -> None:
    """Who did what, why and when (off a terminal: one tab-separated record per line)."""
    s = session(ctx)
    trail = s.api.get(f"/rollouts/{segment(rollout_ref(rollout))}/audit")
    if not s.json and not render.out().is_terminal:
        typer.echo(render.audit_lines(trail), nl=False)
        return
    render.emit(s, trail, render.audit_table)


@app.command()
def vitals(
    ctx: typer.Context,
    rollout: RolloutArg,
    window: Annotated[float, typer.Option(min=10, help="seconds of beacons to read, ending now")] = 600,
) -> None:
    """Web vitals (p75 LCP, INP, CLS) per unit version of the rollout's building, from Prometheus."""
    s = session(ctx)
    path = f"/rollouts/{segment(rollout_ref(rollout))}/vitals"
    render.emit(s, s.api.get(path, window=window), render.vitals_table)


def _control(
    ctx: typer.Context, rollout: str, action: str, reason: str, actor: str | None, **params: Any
) -> None:
    s = session(ctx)
    body = {"actor": actor or default_actor(), "reason": reason}
    status = s.api.post(f"/rollouts/{segment(rollout_ref(rollout))}/{action}", body, **params)
    render.emit(s, status, render.status_view)


@app.command()
def pause(ctx: typer.Context, rollout: RolloutArg, reason: Reason = "", actor: Actor = None) -> None:
    """Hold the rollout at its current weight."""
    _control(ctx, rollout, "pause", reason, actor)


@app.command()
def resume(ctx: typer.Context, rollout: RolloutArg, reason: Reason = "", actor: Actor = None) -> None:
    """Continue a paused rollout."""
    _control(ctx, rollout, "resume", reason, actor)


@app.command()
def promote(
    ctx: typer.Context,
    rollout: RolloutArg,
    full: Annotated[bool, typer.Option("--full", help="make the new unit the active one now")] = False,
    reason: Reason = "",
    actor: Actor = None,
) -> None:
    """Advance one step now, or with --full finish the rollout."""
    _control(ctx, rollout, "promote", reason, actor, full="true" if full else None)


@app.command()
def rollback(ctx: typer.Context, rollout: RolloutArg, reason: Reason = "", actor: Actor = None) -> None:
    """Restore last-known-good now; answers once the edge serves it."""
    _control(ctx, rollout, "rollback", reason, actor)


def _apartment_building(rollout: str, apartment: str | None) -> tuple[str, str]:
    """(apartment, building) of `shop/header`, `rollout.shop.header`, or a building with -a."""
    ref = rollout_ref(rollout)
    if ref.startswith("rollout.") and ref.count(".") == 2:
        _, found, building = ref.split(".")
        return apartment or found, building
    if apartment is None:
        raise typer.BadParameter("give apartment/building (shop/header), or the building with -a APARTMENT")
    return apartment, rollout


@app.command(no_args_is_help=True)
def preview(
    ctx: typer.Context,
    rollout: Annotated[
        str,
        typer.Argument(
            metavar="ROLLOUT",
            help="apartment/building (shop/header), a rollout id, or a building with -a",
        ),
    ],
    version: Annotated[
        str | None,
        typer.Option("--version", "-V", help="the version to force (default: the rollout's, even at 0 %)"),
    ] = None,
    apartment: Annotated[
        str | None, typer.Option("--apartment", "-a", help="apartment (shell app) id")
    ] = None,
    unit: Annotated[
        str | None, typer.Option("--unit", "-u", help="unit id, when several share the version")
    ] = None,
    shell: Annotated[
        str | None,
        typer.Option(envvar="SKYLINE_SHELL_URL", help="a shell page; the link opens it overridden"),
    ] = None,
    ttl: Annotated[
        float | None,
        typer.Option("--ttl", min=1, help="seconds the override lives (default: the API's, 1 h)"),
    ] = None,
) -> None:
    """Print a signed override link: one browser gets this version of the building (deployer)."""
    s = session(ctx)
    apartment_id, building = _apartment_building(rollout, apartment)
    if version is None:
        status = s.api.get(f"/rollouts/{segment(f'rollout.{apartment_id}.{building}')}")
        version, unit = status["version"], unit or status["unit_id"]
    body: dict[str, Any] = {"apartment": apartment_id, "building": building, "version": version}
    if unit is not None:
        body["unit"] = unit
    if shell is not None:
        body["shell_url"] = shell
    if ttl is not None:
        body["ttl_seconds"] = ttl
    issued = s.api.post("/overrides", body)
    if s.json:
        render.print_json(issued)
        return
    render.out().print(render.override_view(issued))
    # The link alone on its line, unwrapped, to copy or pipe.
    typer.echo(issued["link"] or f"?{issued['param']}={issued['token']}")


@app.command("revoke-preview", no_args_is_help=True)
def revoke_preview(
    ctx: typer.Context,
    link: Annotated[
        str, typer.Argument(metavar="LINK_OR_TOKEN", help="the override link `preview` printed, or its token")
    ],
) -> None:
    """Revoke an override link before it expires: browsers holding it load the usual version again."""
    s = session(ctx)
    revoked = s.api.post("/overrides/revoke", {"token": link})
    if s.json:
        render.print_json(revoked)
        return
    typer.echo(
        f"revoked: {revoked['apartment']}/{revoked['building']} -> {revoked['unit']} "
        f"(was valid until {revoked['expires_at']}, revoked by {revoked['revoked_by']})"
    )
