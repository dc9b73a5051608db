"""The layers hold: no upward import, no import cycle, adapters in one place.

skyline (the pure domain) < adapters (storage, bundles, CDN, Temporal
connection) < activities < workflows < worker. The API uses the domain, the
adapters and the workflows by name (skyline/contracts.py), never the
workflow, worker or activity code; the CLI
only talks HTTP. Checked on the source with `ast`, function-level imports
included.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("skyline", "adapters", "activities", "workflows", "worker", "api", "collector", "cli", "stack")
ALLOWED: dict[str, set[str]] = {
    "skyline": {"skyline"},
    "adapters": {"skyline", "adapters"},
    "activities": {"skyline", "adapters", "activities"},
    "workflows": {"skyline", "adapters", "activities", "workflows"},
    "worker": {"skyline", "adapters", "activities", "workflows", "worker"},
    "api": {"skyline", "adapters", "api"},  # workflows by name (skyline/contracts.py)
    "collector": {"skyline", "adapters", "api", "collector"},  # the API's browser routes
    "cli": {"skyline", "cli"},
    "stack": {"skyline", "adapters", "stack"},
}


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(path: Path, known: set[str]) -> set[str]:
    """Project modules a file imports (the longest known prefix of each imported name)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            for i in range(len(parts), 0, -1):
                candidate = ".".join(parts[:i])
                if candidate in known:
                    out.add(candidate)
                    break
    return out


GRAPH = {name: imports(path, set(modules())) - {name} for name, path in modules().items()}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_upward_import(module: str) -> None:
    layer = module.split(".")[0]
    wrong = sorted(m for m in GRAPH[module] if m.split(".")[0] not in ALLOWED[layer])
    assert wrong == [], f"{module} ({layer}) imports {wrong}"


def test_no_import_cycle() -> None:
    # packages' __init__ modules only re-export nothing here, so a cycle is a real one
    seen: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH.get(node, ())):
            if nxt.endswith("__init__"):
                continue
            if seen.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in seen:
                visit(nxt)
        stack.pop()
        seen[node] = 2

    for node in sorted(GRAPH):
        if node not in seen:
            visit(node)
    assert cycles == []


def test_the_api_never_loads_the_worker_or_activity_code() -> None:
    """Not only no import: the API process, once up, has loaded no workflow, activity or worker module."""
    probe = (
        "import sys, api.main; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'workflows', 'activities', 'worker'}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
