"""The `skyline` command: global options, command groups, and failures turned into exit codes."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from cli import fleets, judge, manifests, pipelines, render, rollouts, schedules, tokens
from cli.client import DEFAULT_API_URL, Session
from cli.errors import EXIT_CODES_HELP, CliFailure
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


class SkylineGroup(TyperGroup):
    """Every command's CliFailure ends here: message on stderr, its exit code for scripts."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_output(args))

    # Any: typer vendors its own click from 0.2x on, and the context class moved with it.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CliFailure as failure:
            render.report_failure(ctx.find_object(Session) or Session(), failure)
            raise typer.Exit(int(failure.code)) from failure


app = typer.Typer(
    cls=SkylineGroup,
    name="skyline",
    help="Release Skyline micro-frontends: start and steer rollouts, inspect manifests, schedule promotions.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    # locals would print the bearer token
    pretty_exceptions_show_locals=False,
)
app.add_typer(rollouts.app, name="rollout")
app.add_typer(fleets.app, name="fleet")
app.add_typer(pipelines.app, name="pipeline")
app.add_typer(manifests.app, name="manifest")
app.add_typer(schedules.app, name="schedule")
app.add_typer(tokens.app, name="token")
app.add_typer(judge.app, name="judge")


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
