"""Options and arguments several command groups share, and id shorthands."""

from __future__ import annotations

import getpass
from enum import StrEnum
from typing import Annotated

import typer

from cli.client import Session


def session(ctx: typer.Context) -> Session:
    found = ctx.find_object(Session)
    if found is None:  # a command invoked without the root callback (never from `skyline`)
        found = ctx.ensure_object(Session)
    return found


def default_actor() -> str:
    # With auth on, the API records the token's name instead; this is for local stacks.
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def rollout_ref(value: str) -> str:
    """`shop/header` is short for the workflow id `rollout.shop.header`."""
    if value.startswith("rollout."):
        return value
    if value.count("/") == 1:
        apartment, building = value.split("/")
        return f"rollout.{apartment}.{building}"
    return value


def schedule_ref(value: str) -> str:
    """A rollout (id or `shop/header`) names its promotion schedule `promote.<rollout id>`."""
    if value.startswith("promote."):
        return value
    if value.startswith("rollout.") or value.count("/") == 1:
        return f"promote.{rollout_ref(value)}"
    return value


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


RolloutArg = Annotated[
    str,
    typer.Argument(
        metavar="ROLLOUT", help="rollout id (rollout.<apartment>.<building>) or apartment/building"
    ),
]
ScheduleArg = Annotated[
    str, typer.Argument(metavar="SCHEDULE", help="schedule id (promote.rollout.<a>.<b>), or its rollout")
]
# One convention: `-a/--apartment` everywhere; the positional form of `manifest …` still works.
ApartmentArg = Annotated[
    str | None,
    typer.Argument(metavar="[APARTMENT]", help="apartment (shell app) id; same as -a", show_default=False),
]
ApartmentOpt = Annotated[
    str | None, typer.Option("--apartment", "-a", help="apartment (shell app) id", show_default=False)
]


def pick_apartment(positional: str | None, option: str | None) -> str:
    """The apartment given as `-a/--apartment` or positionally (not two different ones)."""
    if positional is not None and option is not None and positional != option:
        raise typer.BadParameter(f"two apartments given: {positional!r} and -a {option!r}")
    chosen = option if option is not None else positional
    if chosen is None:
        raise typer.BadParameter("which apartment? give -a/--apartment APARTMENT")
    return chosen


Reason = Annotated[str, typer.Option("--reason", "-r", help="why; recorded in the audit trail")]
Actor = Annotated[
    str | None,
    typer.Option(help="who (default: your user name; with auth on the API records the token's name)"),
]
# `watch` and `start --watch` of rollouts and fleets
Interval = Annotated[float, typer.Option(min=0.1, help="seconds between polls")]
Timeout = Annotated[
    float | None,
    typer.Option(min=0, help="give up (exit 5) after this many seconds; default: wait for the end"),
]
