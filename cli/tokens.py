"""`skyline token …`: API tokens (admin); only their hashes are kept."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from cli import render
from cli.client import segment
from cli.help import MARKUP, HelpGroup
from cli.options import session

app = typer.Typer(
    help="Mint, list and revoke API tokens (admin).",
    no_args_is_help=True,
    rich_markup_mode=MARKUP,
    cls=HelpGroup,
)


class Role(StrEnum):
    viewer = "viewer"
    deployer = "deployer"
    admin = "admin"


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Token names, roles and where each comes from."""
    s = session(ctx)
    render.emit(s, s.api.get("/tokens"), render.tokens_table)


@app.command(no_args_is_help=True)
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="the actor recorded for this token's actions")],
    role: Annotated[Role, typer.Option("--role", help="viewer reads, deployer steers rollouts, admin all")],
) -> None:
    """Mint a token; it is printed once."""
    s = session(ctx)
    render.emit(s, s.api.post("/tokens", {"name": name, "role": role.value}), render.minted_view)


@app.command()
def revoke(ctx: typer.Context, name: str) -> None:
    """Revoke a minted token."""
    s = session(ctx)
    s.api.delete(f"/tokens/{segment(name)}")
    if s.json:
        render.print_json({"revoked": name})
    else:
        render.out().print(f"revoked {name}")
