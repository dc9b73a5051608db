"""`skyline judge replay FILE`: the judge offline, on step documents; no server needed.

Input: JSON Lines, one step document per line (`-` reads stdin); the format is
in skyline/figures.py and docs/judgement.md. Output: one JSON object per line,
in order: `decision` (promote | rollback | hold), `decided_at_look`, `reason`,
`basis`, `checks`. A line that is not a valid document gets
`{"error": ..., "line": n}` and the exit code is 1 (the others are still judged).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from cli.errors import Exit
from cli.help import MARKUP, HelpGroup

app = typer.Typer(
    help="The canary judge, offline: replay step documents against a policy.",
    no_args_is_help=True,
    rich_markup_mode=MARKUP,
    cls=HelpGroup,
)


def replay_lines(lines: TextIO, policy: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], bool]:
    """Judge every line; (results, all lines valid)."""
    # Here, not at the top: the judge pulls in scipy (~1 s), which no other command needs.
    from pydantic import ValidationError

    from skyline.figures import StepDocument
    from skyline.judge import judge_step

    out: list[dict[str, Any]] = []
    ok = True
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if policy is not None:
                raw = {**raw, "analysis": {**(raw.get("analysis") or {}), **policy}}
            doc = StepDocument.model_validate(raw)
            out.append(judge_step(doc).as_json())
        except (ValueError, ValidationError) as exc:
            ok = False
            out.append({"error": str(exc).splitlines()[0][:500], "line": number})
    return out, ok


@app.command()
def replay(
    file: Annotated[str, typer.Argument(help="JSON Lines of step documents, or - for stdin")],
    policy: Annotated[
        str | None,
        typer.Option(help="JSON object of analysis settings laid over every document's (try another policy)"),
    ] = None,
) -> None:
    """Judge each step document as the workflow would, look by look; one JSON result per line."""
    overrides = json.loads(policy) if policy else None
    if overrides is not None and not isinstance(overrides, dict):
        raise typer.BadParameter("--policy must be a JSON object")
    if file == "-":
        results, ok = replay_lines(sys.stdin, overrides)
    else:
        path = Path(file)
        if not path.is_file():
            raise typer.BadParameter(f"no such file: {file}")
        with path.open(encoding="utf-8") as handle:
            results, ok = replay_lines(handle, overrides)
    for result in results:
        sys.stdout.write(json.dumps(result) + "\n")
    if not ok:
        raise typer.Exit(int(Exit.REFUSED))
