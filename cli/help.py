"""How `skyline ... --help` is laid out: click's plain formatter, whole help lines.

Every typer app of the CLI sets `rich_markup_mode=None`: typer's rich formatter imports
rich's markdown, syntax and traceback modules (about 90 ms, a third of `skyline --help`)
to print the same text in boxes (docs/cli.md#startup). Click's own formatter cuts each
command's help line to the terminal width less the name, ending it with "..."; rich did
not, so the listing here prints each command's first sentence whole, wrapped.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup

# Markup mode of every app: None is click's formatter (see the module's docstring).
MARKUP = None


class HelpGroup(TyperGroup):
    """A command group whose `--help` lists each command's help line uncut."""

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows: list[tuple[str, str]] = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                # no limit: the first sentence whole; write_dl wraps it under the column
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
