"""`skyline schedule …`: Temporal Schedules that promote canaries on a timetable."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import render
from cli.client import segment
from cli.help import MARKUP, HelpGroup
from cli.options import ScheduleArg, rollout_ref, schedule_ref, session

app = typer.Typer(
    help="Scheduled promotion of canaries (Temporal Schedules).",
    no_args_is_help=True,
    rich_markup_mode=MARKUP,
    cls=HelpGroup,
)

Note = Annotated[str, typer.Option(help="shown on the schedule, e.g. why it is paused")]


@app.command(no_args_is_help=True)
def create(
    ctx: typer.Context,
    rollout: Annotated[str, typer.Option("--rollout", help="rollout id or apartment/building")],
    cron: Annotated[str, typer.Option(help="when to promote, e.g. '0 10 * * 1-5'")],
    timezone: Annotated[str, typer.Option(help="IANA zone the cron is read in")] = "UTC",
    note: Note = "",
) -> None:
    """Promote a rollout held at its last step (promotion: scheduled) on a cron (admin)."""
    s = session(ctx)
    body = {"rollout_id": rollout_ref(rollout), "cron": cron, "timezone": timezone, "note": note}
    render.emit(s, s.api.post("/schedules", body), render.schedule_view)


@app.command("list")
def list_(ctx: typer.Context, limit: Annotated[int, typer.Option(min=1, max=500)] = 100) -> None:
    """Promotion schedules with their next run."""
    s = session(ctx)
    render.emit(s, s.api.get("/schedules", limit=limit), render.schedules_table)


@app.command()
def describe(ctx: typer.Context, schedule: ScheduleArg) -> None:
    """One schedule: cron, zone, paused, next and recent runs."""
    s = session(ctx)
    render.emit(s, s.api.get(f"/schedules/{segment(schedule_ref(schedule))}"), render.schedule_view)


@app.command()
def pause(ctx: typer.Context, schedule: ScheduleArg, note: Note = "") -> None:
    """Stop the schedule from firing (admin)."""
    s = session(ctx)
    view = s.api.post(f"/schedules/{segment(schedule_ref(schedule))}/pause", {"note": note})
    render.emit(s, view, render.schedule_view)


@app.command()
def unpause(ctx: typer.Context, schedule: ScheduleArg, note: Note = "") -> None:
    """Let the schedule fire again (admin)."""
    s = session(ctx)
    view = s.api.post(f"/schedules/{segment(schedule_ref(schedule))}/unpause", {"note": note})
    render.emit(s, view, render.schedule_view)


@app.command()
def trigger(ctx: typer.Context, schedule: ScheduleArg) -> None:
    """Run the promotion check now; analysis and release windows still apply (admin)."""
    s = session(ctx)
    render.emit(s, s.api.post(f"/schedules/{segment(schedule_ref(schedule))}/trigger"), render.schedule_view)


@app.command()
def delete(ctx: typer.Context, schedule: ScheduleArg) -> None:
    """Delete the schedule (admin)."""
    s = session(ctx)
    schedule_id = schedule_ref(schedule)
    s.api.delete(f"/schedules/{segment(schedule_id)}")
    if s.json:
        render.print_json({"deleted": schedule_id})
    else:
        render.out().print(f"deleted {schedule_id}")
