"""Where each file of a bundle is stored: the shared per-unit layout (docs/bundles.md).

All versions of a unit share one directory, `bundles/<unit>/`, that mirrors the
bundle's relative layout. A file keeps its relative path there, so an
unchanged file (a vendor chunk, a stylesheet, an image) has the same key, and
so the same URL, in every version: it is uploaded once and browsers keep it in
their cache. Bundlers put a content hash in the names of the files that change
(`chunk-5XKQ2ABC.js`); the entry keeps a fixed name (`index.js`), so the entry
and its same-named siblings (`index.js.map`, `index.css`) are renamed, each with
a tag of its own content (`index.3f9a….js`, `index.77c0….css`). Relative imports from the entry
(`./chunk-5XKQ2ABC.js`) resolve against its URL, i.e. in the same shared
directory, exactly as in the bundle; the one reference to a renamed file a
bundler writes, the `sourceMappingURL` comment, is rewritten.

Keys are never overwritten (If-None-Match: *). When the shared layout cannot
hold a bundle, it is published as before under its own content-addressed
prefix (`bundles/<unit>/<tree hash>/`, layout "versioned"):

* a file would take a key that holds other bytes (an unhashed name such as
  `chunk-0.js` whose content changed since an earlier version);
* another file of the bundle names the entry or a renamed sibling
  (a chunk importing `./index.js` would miss the renamed entry).
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from adapters.bundles import BundleFile, open_nofollow

TAG_LENGTH = 16
_REFERENCING = (".js", ".mjs", ".cjs", ".css")
_MAP_COMMENT = re.compile(rb"(sourceMappingURL=)([^\s*'\"]+)")


class SharedKeyConflict(Exception):
    """A shared key already holds other bytes: publish under the versioned prefix instead."""


@dataclass
class PlannedFile:
    relpath: str
    key: str
    path: Path
    sha256: str
    body: bytes | None = None  # rewritten bytes; None: the file on disk as is
    # The key is derived from the content (a tagged name, a tree-hash prefix): whatever
    # else is found there is wrong, so these very bytes may always be written over it.
    content_addressed: bool = False
    _digests: tuple[str, str, int] | None = field(default=None, repr=False)

    def read(self) -> bytes:
        if self.body is not None:
            return self.body
        with open_nofollow(self.path) as fh:  # a symlink swapped in after the scan is refused
            return fh.read()

    def _digest(self) -> tuple[str, str, int]:
        if self._digests is None:
            data = self.read()
            sri = "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()
            self._digests = (hashlib.md5(data).hexdigest(), sri, len(data))
        return self._digests

    @property
    def md5(self) -> str:
        return self._digest()[0]

    @property
    def integrity(self) -> str:
        return self._digest()[1]

    @property
    def size(self) -> int:
        if self._digests is None and self.body is None:
            return self.path.stat().st_size
        return self._digest()[2]

    def stored(self, existing: dict[str, tuple[int, str]]) -> bool:
        """True if `existing` (listing: key -> (size, ETag)) already holds these very bytes.

        By size and MD5 (the ETag of a single-part PUT, which is how every file is written),
        even at a content-derived key: an object of the right size with other bytes there
        (tampered, or cut short and padded) is sent again, not trusted by its name."""
        found = existing.get(self.key)
        return found is not None and found[0] == self.size and found[1] == self.md5


def _entry_group(files: list[BundleFile], entry: str) -> list[BundleFile]:
    """The entry and the files named after it in its directory (index.js.map, index.css …)."""
    directory, name = posixpath.split(entry)
    stem = name.split(".", 1)[0]
    return [
        f
        for f in files
        if posixpath.dirname(f.relpath) == directory and posixpath.basename(f.relpath).startswith(stem + ".")
    ]


def _tagged(relpath: str, tag: str) -> str:
    directory, name = posixpath.split(relpath)
    stem, _, rest = name.partition(".")
    return posixpath.join(directory, f"{stem}.{tag}.{rest}" if rest else f"{stem}.{tag}")


def _rename_map_comments(body: bytes, renamed: dict[str, str]) -> bytes:
    def swap(match: re.Match[bytes]) -> bytes:
        target = match.group(2).decode("utf-8", errors="replace")
        return match.group(1) + renamed.get(target, target).encode() if target in renamed else match.group(0)

    return _MAP_COMMENT.sub(swap, body)


def plan_shared(
    files: list[BundleFile],
    entry: str,
    unit_prefix: str,
    existing: dict[str, tuple[int, str]],
    tag_also: Collection[str] = (),
) -> list[PlannedFile] | None:
    """Keys in the shared layout, or None when this bundle must be published apart.

    `tag_also`: other unhashed files that change with every build and that no module
    imports (a Module Federation remote's mf-manifest.json): stored under a name
    tagged with their content, like the entry, so they never hold a shared key."""
    group = _entry_group(files, entry)
    # Each renamed file is tagged with its own (published) content, so an unchanged
    # sibling such as index.css keeps its name even when the entry changes. Maps first:
    # the entry's sourceMappingURL names its map's new name, and is tagged after that.
    renamed: dict[str, str] = {}
    bodies: dict[str, bytes] = {}
    for f in sorted(group, key=lambda f: not f.relpath.endswith(".map")):
        body = f.path.read_bytes()
        if f.relpath.endswith(_REFERENCING):
            maps = {posixpath.basename(o): posixpath.basename(n) for o, n in renamed.items()}
            body = _rename_map_comments(body, maps)
        bodies[f.relpath] = body
        renamed[f.relpath] = _tagged(f.relpath, hashlib.sha256(body).hexdigest()[:TAG_LENGTH])
    renamed_names = {posixpath.basename(old): posixpath.basename(new) for old, new in renamed.items()}

    plan: list[PlannedFile] = []
    for f in files:
        if f.relpath in tag_also and f.relpath not in renamed:
            key = unit_prefix + _tagged(f.relpath, f.sha256[:TAG_LENGTH])
            plan.append(PlannedFile(f.relpath, key, f.path, f.sha256, content_addressed=True))
            continue
        if f.relpath in renamed:
            body = bodies[f.relpath]
            key = unit_prefix + renamed[f.relpath]
            digest = hashlib.sha256(body).hexdigest()
            plan.append(PlannedFile(f.relpath, key, f.path, digest, body, content_addressed=True))
            continue
        if f.relpath.endswith(_REFERENCING):
            data = f.path.read_bytes()
            if any(name.encode() in data for name in renamed_names):
                return None  # it names the entry or a sibling we rename: imports would miss
        item = PlannedFile(f.relpath, unit_prefix + f.relpath, f.path, f.sha256)
        if item.key in existing and not item.stored(existing):
            return None  # that name holds other bytes (an unhashed file that changed)
        plan.append(item)
    return plan
