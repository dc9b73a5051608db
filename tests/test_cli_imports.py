"""`skyline` answers at once: the CLI's import graph leaves out what only some commands need.

Each check runs in a fresh interpreter, so modules another test imported cannot hide a regression.
Timing itself is in `python -m bench --only cli`, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys

from cli.main import GROUPS, load_group

# scipy and numpy are the judge's (`skyline judge replay`), temporalio the worker's;
# the skyline domain modules bring pydantic models the API already validated.
# httpx: the CLI speaks HTTP through urllib (cli/transport.py), which costs a fifth as much.
NEVER_AT_STARTUP = (
    "scipy",
    "numpy",
    "temporalio",
    "httpx",
    "skyline.judge",
    "skyline.figures",
    "skyline.rollout",
)
# HTTP is for commands that talk to the API, not for `import cli.main` or `--help`; nor is
# rich, which only commands that print tables load (help is click's formatter, cli/help.py).
NOT_FOR_HELP = (
    *NEVER_AT_STARTUP,
    "cli.transport",
    "urllib.request",
    "rich",
    "cli.render",
    "typer.rich_utils",
)

PROBE = """
import io, json, sys
{setup}
print(json.dumps(sorted(sys.modules)))
print(json.dumps(globals().get("captured", io.StringIO()).getvalue()))
"""


def _run_probe(setup: str) -> tuple[set[str], str]:
    """(the modules loaded after `setup`, what the CLI printed on stdout)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(setup=setup)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    *_, modules, printed = done.stdout.strip().splitlines()
    return set(json.loads(modules)), str(json.loads(printed))


def _modules_after(setup: str) -> set[str]:
    return _run_probe(setup)[0]


def _run_cli(*args: str) -> str:
    """`skyline ARGS` in-process, its exit swallowed, so the probe can list what it imported."""
    return (
        "import contextlib, io\n"
        "from cli.main import app\n"
        "captured = io.StringIO()\n"
        "with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(io.StringIO()):\n"
        f"    try: app({list(args)!r}, prog_name='skyline')\n"
        "    except SystemExit: pass\n"
    )


def _loaded(modules: set[str], roots: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == r or m.startswith(r + ".") for r in roots))


def test_importing_the_cli_loads_no_heavy_module() -> None:
    assert _loaded(_modules_after("import cli.main"), NOT_FOR_HELP) == []


def test_help_loads_no_heavy_module_and_no_group() -> None:
    modules, printed = _run_probe(_run_cli("--help"))
    # the probe did print the help: every group's whole line, and the exit codes line by line
    for name, (_, line) in GROUPS.items():
        assert name in printed and line.split()[-1] in printed, name
    assert "\n  4  the API cannot be reached, or answered 5xx\n" in printed
    assert _loaded(modules, NOT_FOR_HELP) == []
    # `skyline --help` lists the groups from cli.main's table, without building them
    assert _loaded(modules, tuple(module for module, _ in GROUPS.values())) == []


def test_the_listed_help_lines_are_the_groups_own() -> None:
    for name, (_, line) in GROUPS.items():
        assert load_group(name).help == line, name


def test_rollout_get_loads_no_judge_or_temporal() -> None:
    # Port 9 (discard) is closed here: the command fails fast with exit 4 after trying the API.
    modules = _modules_after(_run_cli("--api-url", "http://127.0.0.1:9", "rollout", "get", "shop/header"))
    assert "cli.transport" in modules  # it did try the API
    assert _loaded(modules, NEVER_AT_STARTUP) == []
    # only its own group is imported (and built): not fleets, manifests, schedules, tokens, judge
    assert _loaded(modules, ("cli.fleets", "cli.manifests", "cli.schedules", "cli.tokens", "cli.judge")) == []


def test_judge_replay_still_loads_the_judge() -> None:
    """The lazy import is still an import: the command that needs scipy gets it."""
    stdin = "import io, sys\nsys.stdin = io.StringIO('{}\\n')\n"
    modules = _modules_after(stdin + _run_cli("judge", "replay", "-"))
    assert "skyline.judge" in modules
