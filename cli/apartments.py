"""`skyline apartment …`: create, list and read apartments; add, rename and remove buildings.

Each write is one API call that becomes one manifest revision (docs/concepts.md#apartments-and-buildings).
Only typer and the shared option types load with the module: the HTTP client and rich
come in when a command runs, so `skyline --help` does not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.help import MARKUP, HelpGroup
from cli.options import Actor, ApartmentArg, ApartmentOpt, Reason

if TYPE_CHECKING:
    from rich.console import RenderableType

    from cli.client import Session

app = typer.Typer(
    help="Create apartments (shell apps) and change their buildings; each change is a manifest revision.",
    no_args_is_help=True,
    rich_markup_mode=MARKUP,
    cls=HelpGroup,
)

CATEGORIES = ("header", "main", "sidebar", "footer")

BuildingArg = Annotated[str, typer.Argument(metavar="BUILDING", help="building id (shells mount it by it)")]
IfRevision = Annotated[
    int | None,
    typer.Option(
        "--if-revision",
        min=1,
        help="write only if the manifest is still at this revision (If-Match; exit 1 with 412 otherwise)",
        show_default=False,
    ),
]
Name = Annotated[str | None, typer.Option("--name", "-n", help="what people read [default: the id]")]
Category = Annotated[
    str, typer.Option("--category", "-c", help=f"one of {', '.join(CATEGORIES)}", show_default=False)
]


def parse_building(value: str) -> tuple[str, dict[str, Any]]:
    """`ID:CATEGORY[:NAME]` as `--building` takes it; NAME defaults to the id, capitalised."""
    parts = value.split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise typer.BadParameter(
            f"{value!r}: give ID:CATEGORY[:NAME], e.g. header:header or checkout:main:Checkout",
            param_hint="--building",
        )
    if parts[1] not in CATEGORIES:
        raise typer.BadParameter(
            f"{value!r}: category {parts[1]!r} is not one of {', '.join(CATEGORIES)}", param_hint="--building"
        )
    name = parts[2] if len(parts) == 3 and parts[2] else parts[0].replace("-", " ").capitalize()
    return parts[0], {"name": name, "category": parts[1]}


def _session(ctx: typer.Context) -> Session:
    from cli.options import session

    return session(ctx)


def _actor(actor: str | None) -> str:
    from cli.options import default_actor

    return actor or default_actor()


def _if_match(revision: int | None) -> dict[str, str] | None:
    return {"If-Match": f'"{revision}"'} if revision is not None else None


def _emit(s: Session, data: Any, human: Any) -> None:
    from cli import render

    render.emit(s, data, human)


def _path(apartment: str, *rest: str) -> str:
    from cli.client import segment

    return "/".join(["/apartments", segment(apartment), *(segment(r) for r in rest)])


# --- how answers look -----------------------------------------------------------------------------


def apartment_view(view: dict[str, Any]) -> RenderableType:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from cli import render

    change = view.get("change") or {}
    head = render.pairs(
        [
            ("apartment", f"{view['id']} ({view.get('name', '-')})"),
            ("revision", view.get("revision")),
            ("written", view.get("timestamp")),
            ("by", change.get("actor")),
            ("why", change.get("reason")),
        ]
    )
    table = Table("building", "name", "category", "active unit", "in rollout", "units")
    for b in view.get("buildings", []):
        canary = b.get("canary")
        table.add_row(
            b["id"],
            b.get("name", "-"),
            b.get("category", "-"),
            b.get("active_unit") or "-",
            f"{canary['unit']} {canary['percentage']:g}%" if canary else "-",
            Text(", ".join(b.get("units", [])) or "-", overflow="fold"),
        )
    return Group(head, table)


def apartments_table(rows: list[dict[str, Any]]) -> RenderableType:
    from rich.table import Table
    from rich.text import Text

    table = Table("apartment", "name", "revision", "buildings")
    for row in rows:
        buildings = Text(", ".join(row.get("buildings", [])))
        table.add_row(row["id"], row.get("name", "-"), str(row.get("revision", "-")), buildings)
    return table


def created_view(manifest: dict[str, Any]) -> RenderableType:
    from rich.text import Text

    apartments = manifest.get("apartments") or {}
    lines = []
    for apartment_id, apartment in apartments.items():
        buildings = ", ".join(apartment.get("buildings", {})) or "none"
        revision = manifest.get("version")
        lines.append(f"created apartment {apartment_id} (revision {revision}): buildings {buildings}")
    return Text("\n".join(lines))


# --- commands -------------------------------------------------------------------------------------


@app.command()
def create(
    ctx: typer.Context,
    apartment: Annotated[str, typer.Argument(metavar="APARTMENT", help="the new apartment's id")],
    name: Name = None,
    buildings: Annotated[
        list[str] | None,
        typer.Option("--building", "-b", help="ID:CATEGORY[:NAME], repeatable (e.g. header:header)"),
    ] = None,
    description: Annotated[str, typer.Option(help="a line about the shell app")] = "",
    reason: Reason = "",
    actor: Actor = None,
) -> None:
    """Register a shell application and its buildings (manifest revision 1; admin)."""
    parsed = dict(parse_building(b) for b in buildings or [])
    if len(parsed) != len(buildings or []):
        raise typer.BadParameter("a building id is given twice", param_hint="--building")
    s = _session(ctx)
    body = {
        "id": apartment,
        "apartment": {"name": name or apartment, "description": description, "buildings": parsed},
        "actor": _actor(actor),
        "reason": reason or "create apartment",
    }
    _emit(s, s.api.post("/apartments", body), created_view)


@app.command("list")
def list_apartments(ctx: typer.Context) -> None:
    """Every apartment, its current revision and its buildings."""
    s = _session(ctx)
    _emit(s, s.api.get("/apartments"), apartments_table)


@app.command()
def get(ctx: typer.Context, apartment: ApartmentArg = None, apartment_opt: ApartmentOpt = None) -> None:
    """One apartment: name, revision, and what each building runs and has in rollout."""
    from cli.options import pick_apartment

    s = _session(ctx)
    _emit(s, s.api.get(_path(pick_apartment(apartment, apartment_opt))), apartment_view)


def _required(apartment: str | None) -> str:
    if apartment is None:
        raise typer.BadParameter("which apartment? give -a/--apartment APARTMENT")
    return apartment


@app.command()
def rename(
    ctx: typer.Context,
    apartment_opt: ApartmentOpt = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="the new name")] = None,
    description: Annotated[str | None, typer.Option(help="the new description")] = None,
    if_revision: IfRevision = None,
    reason: Reason = "",
    actor: Actor = None,
) -> None:
    """Change the apartment's name (or description); its id never changes (admin)."""
    if name is None and description is None:
        raise typer.BadParameter("give --name or --description")
    s = _session(ctx)
    body: dict[str, Any] = {"actor": _actor(actor), "reason": reason}
    body.update({k: v for k, v in (("name", name), ("description", description)) if v is not None})
    path = _path(_required(apartment_opt))
    _emit(s, s.api.request("PATCH", path, body=body, headers=_if_match(if_revision)), apartment_view)


@app.command("add-building")
def add_building(
    ctx: typer.Context,
    building: BuildingArg,
    category: Category,
    apartment_opt: ApartmentOpt = None,
    name: Name = None,
    mount: Annotated[
        str | None, typer.Option(help="CSS selector shells mount it into [default: data-skyline-building]")
    ] = None,
    if_revision: IfRevision = None,
    reason: Reason = "",
    actor: Actor = None,
) -> None:
    """Add an empty building to an apartment; then `skyline rollout start -b BUILDING …` (admin)."""
    _, spec = parse_building(f"{building}:{category}:{name or ''}")
    s = _session(ctx)
    body: dict[str, Any] = {"id": building, **spec, "actor": _actor(actor), "reason": reason}
    if mount is not None:
        body["mount"] = mount
    path = _path(_required(apartment_opt), "buildings")
    _emit(s, s.api.request("POST", path, body=body, headers=_if_match(if_revision)), apartment_view)


@app.command("rename-building")
def rename_building(
    ctx: typer.Context,
    building: BuildingArg,
    apartment_opt: ApartmentOpt = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="the new name people read")] = None,
    new_id: Annotated[
        str | None, typer.Option("--id", help="a new id (only while no unit has shipped to it)")
    ] = None,
    if_revision: IfRevision = None,
    reason: Reason = "",
    actor: Actor = None,
) -> None:
    """Rename a building; refused while a rollout runs on it (admin)."""
    if name is None and new_id is None:
        raise typer.BadParameter("give --name or --id")
    s = _session(ctx)
    body: dict[str, Any] = {"actor": _actor(actor), "reason": reason}
    body.update({k: v for k, v in (("name", name), ("id", new_id)) if v is not None})
    path = _path(_required(apartment_opt), "buildings", building)
    _emit(s, s.api.request("PATCH", path, body=body, headers=_if_match(if_revision)), apartment_view)


@app.command("remove-building")
def remove_building(
    ctx: typer.Context,
    building: BuildingArg,
    apartment_opt: ApartmentOpt = None,
    if_revision: IfRevision = None,
    reason: Reason = "",
    actor: Actor = None,
) -> None:
    """Remove a building no unit has shipped to and no rollout runs on (admin)."""
    s = _session(ctx)
    path = _path(_required(apartment_opt), "buildings", building)
    params = {"actor": _actor(actor), "reason": reason}
    _emit(s, s.api.request("DELETE", path, params=params, headers=_if_match(if_revision)), apartment_view)
