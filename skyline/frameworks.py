"""Which framework a bundle is built with, read from the bundle itself (docs/cli.md).

Two places say it where a bundler leaves them: the bundle's package.json
(`dependencies`, `peerDependencies`) and the bare specifiers the entry still
imports (frameworks kept external and shared through an import map). A bundle
that inlines its framework and ships no package.json says nothing: `unknown`,
never a guess.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from skyline.manifest import Framework

# Most specific first: a preact unit aliases react through preact/compat, a solid
# or lit unit may list a react wrapper; the first package found here decides.
PACKAGES: tuple[tuple[Framework, tuple[str, ...]], ...] = (
    ("angular", ("@angular/core",)),
    ("vue", ("vue",)),
    ("svelte", ("svelte",)),
    ("solid", ("solid-js",)),
    ("lit", ("lit", "lit-element", "lit-html", "@lit/reactive-element")),
    ("preact", ("preact", "@preact/compat")),
    ("react", ("react", "react-dom")),
)
UNKNOWN: Framework = "unknown"

# `import x from "p"`, `export * from "p"`, `import "p"`, `import("p")`; comments and
# strings can fool a regex, which only costs a wrong guess where the flag wins anyway.
_SPECIFIER = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(?P<q>["'])(?P<spec>[^"'\s]+)(?P=q)""")


def package_name(specifier: str) -> str | None:
    """`react-dom/client` -> `react-dom`, `@angular/core/x` -> `@angular/core`; None if not bare."""
    if specifier.startswith((".", "/")) or "://" in specifier or specifier.startswith("data:"):
        return None
    parts = specifier.split("/")
    if specifier.startswith("@"):
        return "/".join(parts[:2]) if len(parts) >= 2 else None
    return parts[0]


def imported_packages(source: str) -> set[str]:
    """The packages an ES module imports by bare specifier."""
    found = (package_name(m.group("spec")) for m in _SPECIFIER.finditer(source))
    return {name for name in found if name}


def declared_packages(package_json: Mapping[str, Any]) -> set[str]:
    """Runtime dependencies a package.json names (devDependencies are build tools)."""
    names: set[str] = set()
    for key in ("dependencies", "peerDependencies"):
        section = package_json.get(key)
        if isinstance(section, Mapping):
            names.update(str(name) for name in section)
    return names


def framework_of(packages: Iterable[str]) -> Framework:
    present = set(packages)
    for framework, names in PACKAGES:
        if present.intersection(names):
            return framework
    return UNKNOWN


def detect_framework(package_json_text: str | None, entry_source: str | None) -> Framework:
    """The framework named by the bundle's package.json, else by the entry's imports, else unknown."""
    if package_json_text is not None:
        try:
            parsed = json.loads(package_json_text)
        except ValueError:
            parsed = None
        if isinstance(parsed, Mapping):
            declared = framework_of(declared_packages(parsed))
            if declared != UNKNOWN:
                return declared
    if entry_source is not None:
        return framework_of(imported_packages(entry_source))
    return UNKNOWN
