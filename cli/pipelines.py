"""`skyline pipeline …`: one version through staging and production stages, with gates between.

Only typer is imported at module level: everything else is imported inside the
commands, so `skyline --help` does not pay for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.help import MARKUP, HelpGroup

if TYPE_CHECKING:
    from rich.console import RenderableType

    from cli.client import Session

app = typer.Typer(
    help="Take one version through staging and production stages, with soak, verify and approvals.",
    no_args_is_help=True,
    rich_markup_mode=MARKUP,
    cls=HelpGroup,
)

Ref = Annotated[
    str, typer.Argument(metavar="PIPELINE", help="pipeline id (pipeline.<building>.<unit>) or building/unit")
]
Why = Annotated[str, typer.Option("--reason", "-r", help="why; recorded in the audit trail")]
Who = Annotated[
    str | None,
    typer.Option(help="who (default: your user name; with auth on the API records the token's name)"),
]
IntervalOpt = Annotated[float, typer.Option(min=0.1, help="seconds between polls")]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(min=0, help="give up (exit 5) after this many seconds; default: wait for the end"),
]


def pipeline_ref(value: str) -> str:
    """`header/header` is short for the workflow id `pipeline.header.header`."""
    if not value.startswith("pipeline.") and value.count("/") == 1:
        building, unit = value.split("/")
        return f"pipeline.{building}.{unit}"
    return value


def _session(ctx: typer.Context) -> Session:
    from cli.options import session

    return session(ctx)


def pipeline_view(status: dict[str, Any]) -> RenderableType:
    from rich.console import Group
    from rich.table import Column, Table

    from cli import render

    rows: list[tuple[str, Any]] = [
        ("pipeline", status["pipeline_id"]),
        ("unit", f"{status['unit_id']}@{status['version']} → {status['building']}"),
        ("state", render.state_text(status["state"])),
        ("started by", status.get("started_by", "")),
        ("on failure", status.get("on_failure", "keep")),
        ("updated", render.when(status.get("updated_at"))),
    ]
    for key in ("paused_reason", "reason"):
        if status.get(key):
            rows.append((key.replace("_", " "), status[key]))
    table = Table(
        Column("stage", no_wrap=True),
        "apartments",
        "state",
        Column("evidence", ratio=1, overflow="fold"),
    )
    for stage in status.get("stages") or []:
        evidence = list(stage.get("verified") or [])
        evidence += [f"approved by {a['actor']} ({a['role']})" for a in stage.get("approvals") or []]
        if stage.get("waiting_for"):
            evidence.append(f"waiting for {stage['waiting_for']}")
        if stage.get("reason") and stage["state"] in ("failed", "rolled_back"):
            evidence.append(stage["reason"])
        table.add_row(
            stage["name"],
            ", ".join(stage["apartments"]),
            render.state_text(stage["state"]),
            "\n".join(evidence),
        )
    return Group(render.pairs(rows), table)


def follow_pipeline(s: Session, pipeline_id: str, interval: float, timeout: float | None) -> dict[str, Any]:
    from cli.client import segment
    from cli.watch import follow_to_end

    def summary(status: dict[str, Any]) -> str:
        return f": {status['unit_id']}@{status['version']} through {len(status['stages'])} stages"

    path = f"/pipelines/{segment(pipeline_id)}"
    return follow_to_end(s, path, pipeline_id, pipeline_view, summary, interval, timeout, show_weight=False)


@app.command(no_args_is_help=True)
def start(
    ctx: typer.Context,
    spec: Annotated[
        Path,
        typer.Option(exists=True, dir_okay=False, help="JSON body of POST /pipelines (docs/strategies.md)"),
    ],
    version: Annotated[str | None, typer.Option("--version", "-V", help="the spec's version instead")] = None,
    bundle_dir: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help="the spec's bundle instead: a directory (with --upload, packed and uploaded here)",
        ),
    ] = None,
    upload: Annotated[bool, typer.Option(help="upload --bundle-dir instead of passing its path")] = False,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="why; recorded in the audit")] = None,
    actor: Who = None,
    wait: Annotated[
        bool,
        typer.Option(help="follow it to the end: exit 0 succeeded, 3 failed/rolled back, 5 timed out"),
    ] = False,
    interval: IntervalOpt = 2.0,
    timeout: TimeoutOpt = None,
) -> None:
    """Start a release pipeline from a spec file (for CI: `--spec release.json --wait`)."""
    from cli import render
    from cli.options import default_actor
    from cli.spec import bundle_source, load_spec, merge

    s = _session(ctx)
    body = merge(load_spec(spec), version=version, reason=reason, actor=actor)
    if bundle_dir is not None or upload:
        # CI builds the bundle in the job: uploaded (POST /bundles) before the pipeline starts
        body["bundle"] = bundle_source(s.api, bundle_dir, None, upload, None)
    body.setdefault("actor", default_actor())
    created = s.api.post("/pipelines", body)
    if wait:
        if not s.json:
            render.out().print(f"pipeline {created['id']} started; following it")
        follow_pipeline(s, created["id"], interval, timeout)
        return
    render.emit(s, created, lambda d: f"pipeline {d['id']} (run {d['run_id']})")


@app.command()
def get(ctx: typer.Context, pipeline: Ref) -> None:
    """Every stage: its state, its evidence (verify answers, approvals) and what it waits for."""
    from cli import render
    from cli.client import segment

    s = _session(ctx)
    render.emit(s, s.api.get(f"/pipelines/{segment(pipeline_ref(pipeline))}"), pipeline_view)


@app.command()
def watch(ctx: typer.Context, pipeline: Ref, interval: IntervalOpt = 2.0, timeout: TimeoutOpt = None) -> None:
    """Follow a pipeline until it ends: exit 0 succeeded, 3 failed or rolled back, 5 timed out."""
    follow_pipeline(_session(ctx), pipeline_ref(pipeline), interval, timeout)


def _control(ctx: typer.Context, pipeline: str, action: str, reason: str, actor: str | None) -> None:
    from cli import render
    from cli.client import segment
    from cli.options import default_actor

    s = _session(ctx)
    body = {"actor": actor or default_actor(), "reason": reason}
    path = f"/pipelines/{segment(pipeline_ref(pipeline))}/{action}"
    render.emit(s, s.api.post(path, body), pipeline_view)


@app.command()
def approve(ctx: typer.Context, pipeline: Ref, reason: Why = "", actor: Who = None) -> None:
    """Approve the stage that waits for approval (as your token: its name and role)."""
    _control(ctx, pipeline, "approve", reason, actor)


@app.command()
def reject(ctx: typer.Context, pipeline: Ref, reason: Why = "", actor: Who = None) -> None:
    """Refuse the awaited approval: the line stops."""
    _control(ctx, pipeline, "reject", reason, actor)


@app.command()
def pause(ctx: typer.Context, pipeline: Ref, reason: Why = "", actor: Who = None) -> None:
    """The running stage pauses, the soak clock stops, no later stage starts."""
    _control(ctx, pipeline, "pause", reason, actor)


@app.command()
def resume(ctx: typer.Context, pipeline: Ref, reason: Why = "", actor: Who = None) -> None:
    """Continue a paused pipeline (and its paused stage)."""
    _control(ctx, pipeline, "resume", reason, actor)


@app.command()
def promote(ctx: typer.Context, pipeline: Ref, reason: Why = "", actor: Who = None) -> None:
    """Skip the rest of the current stage's soak (verify and approvals still hold)."""
    _control(ctx, pipeline, "promote", reason, actor)


@app.command()
def rollback(ctx: typer.Context, pipeline: Ref, reason: Why = "", actor: Who = None) -> None:
    """Stop the line: the running stage rolls back, earlier ones are restored where they hold this unit."""
    _control(ctx, pipeline, "rollback", reason, actor)
