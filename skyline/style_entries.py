"""Stylesheets for shells without the loader: a styled entry module per unit. Pure, no I/O.

A native import map names JavaScript only, so a unit whose bundler extracted
its CSS (``index.css`` next to ``index.js``, recorded as ``kind: "style"`` in
``Unit.files``) would mount unstyled in a shell that imports it by its bare
specifier (``@shop/header``) or registers it with single-spa. For such a unit
the bucket-keyed map (api/routes/importmap.py) points the specifier at a small
generated module instead of the unit's entry. That module

1. imports the unit (``export *`` and its ``default``: what a shell imports is
   the unit's own namespace);
2. links each of the unit's stylesheets with ``integrity`` and
   ``crossorigin="anonymous"``, as the loader does, and waits until every one
   applied (top-level await): the import of ``@shop/header`` resolves only then,
   so a shell's ``mount`` (single-spa's ``bootstrap``/``mount``) runs styled;
3. rejects the import when the browser refuses a stylesheet (an integrity
   mismatch or a failed fetch), after removing the links it added: the shell's
   ``import()`` fails and nothing is mounted (single-spa: ``LOAD_ERROR``).

The module is a pure function of the unit (entry URL, stylesheet URLs and
SRIs), stored at the edge under its content hash (``loader/entries/``: the
edge serves it next to the loader, same origin and cache rules), and the map's
``integrity`` names its SRI next to the unit's modules, so the browser
verifies every byte it runs. A unit without stylesheets keeps its entry in the
map, byte for byte as before.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from dataclasses import dataclass

from skyline.manifest import Unit, UnitFile

ENTRY_PREFIX = "loader/entries/"


@dataclass(frozen=True)
class StyleEntry:
    """A generated entry module: where it is stored, its bytes and its SRI."""

    key: str
    body: bytes
    integrity: str


def stylesheets(unit: Unit) -> list[UnitFile]:
    """The stylesheets the loader links for `unit` (kind "style"), in a stable order."""
    files = unit.files or {}
    return [files[r] for r in sorted(files) if files[r].kind == "style"]


def _js(value: str) -> str:
    # JSON is a JavaScript string literal; `</` and U+2028/9 are escaped for good measure.
    return json.dumps(value).replace("</", "<\\/").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def entry_source(unit: Unit) -> bytes | None:
    """The entry module of a unit with stylesheets, or None when it has none."""
    sheets = tuple((f.url, f.integrity) for f in stylesheets(unit))
    return _source(unit.id, unit.url, sheets) if sheets else None


def _source(unit_id: str, url: str, sheets: tuple[tuple[str, str], ...]) -> bytes:
    entry = _js(url)
    pairs = ",\n  ".join(f"[{_js(href)}, {_js(integrity)}]" for href, integrity in sheets)
    return f"""// Skyline: {_js(unit_id)} with its stylesheets (skyline/style_entries.py).
import * as unit from {entry};
export * from {entry};
export default unit.default;
const sheets = [
  {pairs},
];
const links = [];
try {{
  await Promise.all(sheets.map(([href, integrity]) => new Promise((resolve, reject) => {{
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.crossOrigin = "anonymous";
    link.integrity = integrity;
    link.dataset.skylineUnit = {_js(unit_id)};
    link.addEventListener("load", () => resolve());
    link.addEventListener("error", () => reject(new Error(
      `the browser refused or could not fetch stylesheet ${{href}} (network error or integrity mismatch)`)));
    link.href = href;
    links.push(link);
    document.head.appendChild(link);
  }})));
}} catch (err) {{
  for (const link of links) link.remove();
  throw err;
}}
""".encode()


def sri(body: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()


def style_entry(unit: Unit) -> StyleEntry | None:
    """The stored entry module of `unit`, None when the unit has no stylesheets."""
    sheets = tuple((f.url, f.integrity) for f in stylesheets(unit))
    return _entry(unit.id, unit.url, sheets) if sheets else None


# Every map request of a styled unit asks for its entry: built and hashed once per unit.
@functools.lru_cache(maxsize=4096)
def _entry(unit_id: str, url: str, sheets: tuple[tuple[str, str], ...]) -> StyleEntry:
    body = _source(unit_id, url, sheets)
    key = f"{ENTRY_PREFIX}{hashlib.sha256(body).hexdigest()[:32]}.js"
    return StyleEntry(key=key, body=body, integrity=sri(body))
