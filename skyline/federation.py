"""Module Federation 2 remotes: reading a remote's `mf-manifest.json`.

A Module Federation 2 build (webpack/rspack `@module-federation/enhanced`,
Vite, Modern.js) writes `mf-manifest.json` next to its output. When a bundle
holds one at its root, the unit's entry is the remote's container entry,
`metaData.remoteEntry` (`path` joined with `name`, as
`@module-federation/sdk`'s simpleJoinRemoteEntry does), and the unit records
the container's name, entry type and exposes in `Unit.federation`, so the
runtime plugin (loader/skyline-mf-plugin.js) can give a host's remote the
version each user gets (docs/integrations.md#module-federation-2).

Pure: bytes in, a checked `RemoteManifest` out, or `FederationManifestError`
saying what to fix. Whether the entry file is in the bundle is the adapter's
business (adapters/bundles.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

MF_MANIFEST = "mf-manifest.json"
# Files a Module Federation build writes under fixed names with per-build content; no module
# imports them, so the shared layout stores them under content-tagged names (docs/bundles.md).
MF_METADATA = frozenset({MF_MANIFEST, "mf-stats.json", "@mf-types.zip"})
MAX_MANIFEST_BYTES = 1024 * 1024
# Entry types a browser can load: an ES module (`import()`), a classic script that sets a
# global (`var`/`global`/`window`/`self`/`this`), or a System.register module.
BROWSER_TYPES = frozenset({"module", "esm", "var", "global", "window", "self", "this", "system"})
ENTRY_SUFFIXES = (".js", ".mjs")
_NAME = re.compile(r"^[A-Za-z0-9_$@][A-Za-z0-9_$@./:-]{0,213}$")


class FederationManifestError(ValueError):
    """The bundle's mf-manifest.json cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class RemoteManifest:
    """What Skyline keeps of a remote's mf-manifest.json."""

    name: str  # the container's name (a host's `remotes[].name`)
    entry: str  # the container entry, relative to the bundle root
    type: str  # remoteEntry type: "module"/"esm" (import()), "var"/"global"/…: a classic script
    global_name: str | None = None  # the global a classic-script entry sets
    exposes: list[str] = field(default_factory=list)  # "./Button", …
    shared: list[str] = field(default_factory=list)  # package names the remote shares


def join_remote_entry(path: str, name: str) -> str:
    """`metaData.remoteEntry.path` + `name`, as @module-federation/sdk joins them."""
    if path in ("", "."):
        return name
    if path.startswith("./"):
        path = path[2:]
    path = path.strip("/")
    return f"{path}/{name}" if path else name


def _entry_inside(entry: str) -> str:
    parts = entry.split("/")
    if (
        not entry
        or entry.startswith("/")
        or "\\" in entry
        or any(p in ("", ".", "..") for p in parts)
        or any(ord(c) < 32 or ord(c) == 127 for c in entry)
        or "://" in entry
    ):
        raise FederationManifestError(
            f"mf-manifest.json: metaData.remoteEntry {entry!r} must be a relative path inside the "
            "bundle (no '..', no absolute path or URL)"
        )
    if not entry.endswith(ENTRY_SUFFIXES):
        raise FederationManifestError(
            f"mf-manifest.json: metaData.remoteEntry {entry!r} is not a JavaScript file (.js or .mjs)"
        )
    return entry


def _string(value: Any, where: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value):
        raise FederationManifestError(
            f"mf-manifest.json: {where} must be a{'' if empty else ' non-empty'} string"
        )
    return value


def _names(items: Any, where: str, key: str) -> list[str]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise FederationManifestError(f"mf-manifest.json: {where} must be a list")
    out: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise FederationManifestError(f"mf-manifest.json: {where}[{i}] must be an object")
        value = item.get(key, item.get("name"))
        out.append(_string(value, f"{where}[{i}].{key}"))
    return out


def parse_mf_manifest(data: bytes) -> RemoteManifest:
    """Check a remote's mf-manifest.json and keep its container entry, name and exposes."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise FederationManifestError(f"mf-manifest.json is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise FederationManifestError(f"mf-manifest.json is not JSON ({str(exc)[:120]})") from None
    if not isinstance(doc, dict):
        raise FederationManifestError("mf-manifest.json must be a JSON object")
    meta = doc.get("metaData")
    if not isinstance(meta, dict):
        raise FederationManifestError(
            "mf-manifest.json has no metaData object (is it a Module Federation 2 manifest?)"
        )
    remote_entry = meta.get("remoteEntry")
    if not isinstance(remote_entry, dict):
        raise FederationManifestError("mf-manifest.json has no metaData.remoteEntry {name, path, type}")
    entry_name = _string(remote_entry.get("name"), "metaData.remoteEntry.name")
    entry_path = _string(remote_entry.get("path", ""), "metaData.remoteEntry.path", empty=True)
    entry_type = _string(remote_entry.get("type", "global"), "metaData.remoteEntry.type")
    if entry_type not in BROWSER_TYPES:
        raise FederationManifestError(
            f"mf-manifest.json: metaData.remoteEntry.type {entry_type!r} is not loadable by a browser "
            f"(one of {', '.join(sorted(BROWSER_TYPES))})"
        )
    name = _string(doc.get("name", meta.get("name")), "name")
    if not _NAME.match(name):
        raise FederationManifestError(f"mf-manifest.json: name {name[:80]!r} is not a container name")
    global_name = meta.get("globalName")
    if global_name is not None:
        global_name = _string(global_name, "metaData.globalName")
    return RemoteManifest(
        name=name,
        entry=_entry_inside(join_remote_entry(entry_path, entry_name)),
        type=entry_type,
        global_name=global_name,
        exposes=_names(doc.get("exposes"), "exposes", "path"),
        shared=_names(doc.get("shared"), "shared", "name"),
    )
