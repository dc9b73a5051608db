"""Reading a bundle from disk or from an uploaded archive; hashing it."""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import tarfile
from dataclasses import dataclass
from pathlib import Path

CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".cjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".map": "application/json",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}


class BundleError(ValueError):
    """The bundle cannot be published as given; the message says what to fix."""


@dataclass(frozen=True)
class BundleFile:
    relpath: str
    path: Path
    size: int
    sha256: str


def content_type(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sri_sha384(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def scan_bundle(root: Path, entry: str) -> list[BundleFile]:
    if not root.is_dir():
        raise BundleError(f"bundle path {str(root)!r} is not a directory on the worker")
    files = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.is_symlink():
            raise BundleError(f"bundle contains a symlink {path.relative_to(root)}; ship real files")
        rel = path.relative_to(root).as_posix()
        files.append(BundleFile(rel, path, path.stat().st_size, _sha256(path)))
    if not files:
        raise BundleError(f"bundle directory {str(root)!r} is empty")
    if entry not in {f.relpath for f in files}:
        raise BundleError(f"entry {entry!r} is not in the bundle; set `entry` to its entry module")
    return files


def tree_hash(files: list[BundleFile]) -> str:
    """Content address of the whole bundle: same files, same prefix."""
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.relpath}\0{f.sha256}\n".encode())
    return digest.hexdigest()


def extract_archive(archive: Path, dest: Path, max_bytes: int) -> Path:
    """Unpack a .tar.gz safely (no links, no paths leaving dest, bounded size)."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            total = sum(m.size for m in members if m.isfile())
            if total > max_bytes:
                raise BundleError(f"archive unpacks to {total} bytes, over the {max_bytes} limit")
            for m in members:
                if m.issym() or m.islnk() or m.isdev():
                    raise BundleError(f"archive member {m.name!r} is a link or device; not allowed")
            tar.extractall(dest, filter="data")
    except tarfile.TarError as exc:
        raise BundleError(f"bundle archive is not a readable tar.gz: {exc}") from exc
    return dest


def bundle_root(unpacked: Path, entry: str) -> Path:
    """Archives made with `tar -C dir .` and ones with a single top folder both work."""
    if (unpacked / entry).is_file():
        return unpacked
    children = list(unpacked.iterdir())
    if len(children) == 1 and children[0].is_dir() and (children[0] / entry).is_file():
        return children[0]
    return unpacked
