"""`skyline manifest …`: what shells load, its revisions, diffs, undo and per-user resolution."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli import render
from cli.client import segment
from cli.help import MARKUP, HelpGroup
from cli.options import Actor, ApartmentArg, ApartmentOpt, Reason, default_actor, pick_apartment, session

app = typer.Typer(
    help="Inspect an apartment's manifest and its revisions; undo to one.",
    no_args_is_help=True,
    rich_markup_mode=MARKUP,
    cls=HelpGroup,
)


@app.command()
def show(
    ctx: typer.Context,
    apartment: ApartmentArg = None,
    apartment_opt: ApartmentOpt = None,
    revision: Annotated[int | None, typer.Option("--revision", "-n", min=1, help="an older revision")] = None,
    last_known_good: Annotated[
        bool, typer.Option("--last-known-good", help="the newest revision with no unit in rollout")
    ] = False,
) -> None:
    """The current manifest (or one revision) as the origin stores it."""
    if revision is not None and last_known_good:
        raise typer.BadParameter("give --revision or --last-known-good, not both")
    s = session(ctx)
    base = f"/apartments/{segment(pick_apartment(apartment, apartment_opt))}"
    if revision is not None:
        path = f"{base}/revisions/{revision}"
    elif last_known_good:
        path = f"{base}/last-known-good"
    else:
        path = f"{base}/manifest"
    render.emit(s, s.api.get(path), render.manifest_view)


@app.command()
def history(
    ctx: typer.Context,
    apartment: ApartmentArg = None,
    apartment_opt: ApartmentOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="newest revisions to describe (table output)")] = 20,
) -> None:
    """Revisions, newest first, with who wrote each and why."""
    s = session(ctx)
    base = f"/apartments/{segment(pick_apartment(apartment, apartment_opt))}"
    listing: dict[str, Any] = s.api.get(f"{base}/revisions")
    if s.json:
        render.print_json(listing)
        return
    newest = sorted(listing["revisions"], reverse=True)[:limit]
    details = {n: s.api.get(f"{base}/revisions/{n}") for n in newest}
    listing = {**listing, "revisions": newest}
    render.out().print(render.revisions_table(listing, details))


@app.command()
def diff(
    ctx: typer.Context,
    from_revision: Annotated[int, typer.Option("--from", min=1, help="older revision")],
    apartment: ApartmentArg = None,
    apartment_opt: ApartmentOpt = None,
    to_revision: Annotated[
        int | None, typer.Option("--to", min=1, help="newer revision [default: current]")
    ] = None,
) -> None:
    """What changed for shells between two revisions."""
    s = session(ctx)
    apartment = pick_apartment(apartment, apartment_opt)
    found = s.api.get(f"/apartments/{segment(apartment)}/diff", **{"from": from_revision, "to": to_revision})
    render.emit(s, found, render.diff_table)


@app.command()
def undo(
    ctx: typer.Context,
    to_revision: Annotated[int, typer.Option("--to", min=1, help="revision whose content to restore")],
    apartment: ApartmentArg = None,
    apartment_opt: ApartmentOpt = None,
    reason: Reason = "",
    actor: Actor = None,
) -> None:
    """Write revision N's content as a new revision and purge the edge (admin)."""
    s = session(ctx)
    apartment = pick_apartment(apartment, apartment_opt)
    body = {"to_revision": to_revision, "actor": actor or default_actor(), "reason": reason}
    render.emit(s, s.api.post(f"/apartments/{segment(apartment)}/undo", body), render.undo_view)


@app.command()
def resolve(
    ctx: typer.Context,
    user: Annotated[str, typer.Option("--user", help="stable user id")],
    apartment: ApartmentArg = None,
    apartment_opt: ApartmentOpt = None,
    region: Annotated[str | None, typer.Option(help="user's region")] = None,
    segments: Annotated[list[str] | None, typer.Option("--segment", help="user segment (repeatable)")] = None,
    flags: Annotated[list[str] | None, typer.Option("--flag", help="feature flag on (repeatable)")] = None,
) -> None:
    """Which unit each building serves this user now."""
    s = session(ctx)
    apartment = pick_apartment(apartment, apartment_opt)
    found = s.api.get(
        f"/apartments/{segment(apartment)}/resolve", user=user, region=region, segment=segments, flag=flags
    )
    render.emit(s, found, render.resolve_table)


@app.command()
def gc(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="list what would be deleted and why; delete nothing")
    ] = False,
    apartment_opt: ApartmentOpt = None,
    reason: Reason = "",
    actor: Actor = None,
) -> None:
    """Delete published files past the retention window (admin; --dry-run: deployer)."""
    s = session(ctx)
    body: dict[str, Any] = {"dry_run": dry_run, "actor": actor or default_actor(), "reason": reason}
    if apartment_opt is not None:
        body["apartment"] = apartment_opt
    render.emit(s, s.api.post("/storage/gc", body), render.gc_view)
