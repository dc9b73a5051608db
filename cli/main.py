"""The `skyline` command: global options, command groups, and failures turned into exit codes."""

from __future__ import annotations

import importlib
from functools import cache
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from cli.client import DEFAULT_API_URL, Session
from cli.errors import EXIT_CODES_HELP, CliFailure
from cli.help import MARKUP, HelpGroup
from cli.options import OutputFormat


def hoist_output(args: list[str]) -> list[str]:
    """`skyline rollout get X -o json` means `skyline -o json rollout get X`, as kubectl users type it."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i:]
            break
        if arg in ("-o", "--output") and i + 1 < len(args):
            front += [arg, args[i + 1]]
            i += 2
            continue
        if arg.startswith("--output=") or (
            arg.startswith("-o") and len(arg) > 2 and not arg.startswith("--")
        ):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


# Command groups: name -> (the module whose `app` holds them, the help line `skyline --help`
# lists). A group's module is imported, and its commands built, only when that group runs:
# `skyline rollout get` builds the 13 rollout commands, not all of them, and `skyline --help`
# none (docs/cli.md#startup). tests/test_cli_imports.py keeps the lines equal to the modules'.
GROUPS: dict[str, tuple[str, str]] = {
    "apartment": (
        "cli.apartments",
        "Create apartments (shell apps) and change their buildings; each change is a manifest revision.",
    ),
    "rollout": ("cli.rollouts", "Start, list, inspect, follow and steer rollouts."),
    "fleet": ("cli.fleets", "Ship one unit version to many apartments in batches."),
    "pipeline": (
        "cli.pipelines",
        "Take one version through staging and production stages, with soak, verify and approvals.",
    ),
    "manifest": ("cli.manifests", "Inspect an apartment's manifest and its revisions; undo to one."),
    "schedule": ("cli.schedules", "Scheduled promotion of canaries (Temporal Schedules)."),
    "token": ("cli.tokens", "Mint, list and revoke API tokens (admin)."),
    "judge": ("cli.judge", "The canary judge, offline: replay step documents against a policy."),
}


@cache
def load_group(name: str) -> Any:
    """The click group of `skyline NAME`, built from its module's typer app (once per process)."""
    module = importlib.import_module(GROUPS[name][0])
    group = typer.main.get_group(module.app)
    group.name = name
    return group


class SkylineGroup(HelpGroup):
    """Every command's CliFailure ends here: message on stderr, its exit code for scripts."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_output(args))

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(name for name in GROUPS if name not in self.commands)]

    _listing = False

    def format_help(self, ctx: Any, formatter: Any) -> None:
        # Listing the groups needs their names and help lines only, not their commands.
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in GROUPS and cmd_name not in self.commands:
            if self._listing:
                return TyperGroup(name=cmd_name, help=GROUPS[cmd_name][1])
            self.add_command(load_group(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    # Any: typer vendors its own click from 0.2x on, and the context class moved with it.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CliFailure as failure:
            from cli import render  # rich: only for commands that print (docs/cli.md#startup)

            render.report_failure(ctx.find_object(Session) or Session(), failure)
            raise typer.Exit(int(failure.code)) from failure


app = typer.Typer(
    cls=SkylineGroup,
    name="skyline",
    help="Release Skyline micro-frontends: start and steer rollouts, inspect manifests, schedule promotions.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    rich_markup_mode=MARKUP,  # click's formatter (cli/help.py)
    # locals would print the bearer token
    pretty_exceptions_show_locals=False,
)


@app.callback()
def main(
    ctx: typer.Context,
    api_url: Annotated[
        str, typer.Option("--api-url", envvar="SKYLINE_API_URL", help="base URL of the Skyline API")
    ] = DEFAULT_API_URL,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="SKYLINE_TOKEN", help="bearer token (when the API has auth on)", show_default=False
        ),
    ] = None,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="json: the API's JSON on stdout and nothing else")
    ] = OutputFormat.table,
) -> None:
    session = Session(api_url=api_url, token=token or None, json=output is OutputFormat.json)
    ctx.obj = session
    ctx.call_on_close(session.close)


def run() -> None:
    app(prog_name="skyline")
