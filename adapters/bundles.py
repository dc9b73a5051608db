"""Reading a bundle from disk or from an uploaded archive; hashing it."""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import os
import stat
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from skyline.federation import (
    MAX_MANIFEST_BYTES,
    MF_MANIFEST,
    FederationManifestError,
    RemoteManifest,
    parse_mf_manifest,
)
from skyline.text import CONTROL

if TYPE_CHECKING:
    from skyline.settings import Settings

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


ROOT_SETTING = "SKYLINE_BUNDLE_ROOT"
DEFAULT_ENTRY = "index.js"  # RolloutSpec.entry's default


def open_nofollow(path: Path) -> BinaryIO:
    """Open a bundle file for reading, refusing a symlink swapped in after the scan."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    return os.fdopen(os.open(path, flags), "rb")


def resolve_bundle_path(path: str, root: Path | None) -> Path:
    """The directory `bundle.path` names, if it lies under the bundle root without symlinks.

    The containment check is lexical and comes first, so a refused path outside
    the root tells nothing about what exists there. Below the root every
    component is checked with lstat: a symlink anywhere is refused.
    """
    if root is None:
        raise BundleError(
            f"bundle.path is off on this server ({ROOT_SETTING} is not set); "
            "upload the bundle with POST /bundles and pass bundle.upload_id"
        )
    if CONTROL.search(path):  # a NUL would fail in the OS call below, not as a refusal
        raise BundleError("bundle.path must not contain control characters")
    candidate = Path(path)
    if not candidate.is_absolute() or ".." in candidate.parts:
        raise BundleError(f"bundle.path must be an absolute path under {ROOT_SETTING} ({root})")
    base = Path(os.path.realpath(root))
    relative: Path | None = None
    for prefix in (Path(os.path.abspath(root)), base):
        if candidate == prefix or prefix in candidate.parents:
            relative = candidate.relative_to(prefix)
            break
    if relative is None:
        raise BundleError(f"bundle.path must be a directory under {ROOT_SETTING} ({root})")
    current = base
    for part in relative.parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except OSError:
            raise BundleError(f"bundle.path {path!r} is not a directory under {ROOT_SETTING}") from None
        if stat.S_ISLNK(mode):
            raise BundleError(
                f"bundle.path goes through a symlink ({current.relative_to(base)}); symlinks are not followed"
            )
    if not stat.S_ISDIR(os.lstat(current).st_mode):
        raise BundleError(f"bundle.path {path!r} is not a directory under {ROOT_SETTING}")
    return current


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open_nofollow(path) as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sri_sha384(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def _walk(root: Path) -> list[Path]:
    """Every regular file under root; a symlink or special file anywhere is refused (never followed)."""
    found: list[Path] = []
    for current, dirs, names in os.walk(root, followlinks=False):
        for name in [*dirs, *names]:
            path = Path(current) / name
            mode = os.lstat(path).st_mode
            rel = path.relative_to(root)
            if stat.S_ISLNK(mode):
                raise BundleError(f"bundle contains a symlink {rel}; ship real files")
            if stat.S_ISREG(mode):
                found.append(path)
            elif not stat.S_ISDIR(mode):
                raise BundleError(f"bundle contains {rel}, which is not a regular file")
    return sorted(found)


def scan_bundle(root: Path, entry: str) -> list[BundleFile]:
    if not root.is_dir() or root.is_symlink():
        raise BundleError(f"bundle path {str(root)!r} is not a directory on the worker")
    files = []
    for path in _walk(root):
        rel = path.relative_to(root).as_posix()
        files.append(BundleFile(rel, path, os.lstat(path).st_size, _sha256(path)))
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


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps checked while an archive streams: members, unpacked bytes, expansion ratio."""

    max_files: int = 20_000
    max_bytes: int = 500 * 1024 * 1024
    max_ratio: float = 100.0
    # Small archives compress well without being bombs: this much may always unpack.
    ratio_floor_bytes: int = 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> ArchiveLimits:
        return cls(
            settings.archive_max_files, settings.archive_max_unpacked_bytes, settings.archive_max_ratio
        )


class ArchiveRefused(BundleError):
    """An archive refused for one named reason; `code` is the API's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


MAX_NAME_BYTES = 1024
MAX_COMPONENT_BYTES = 255


def _check_name(name: str) -> None:
    shown = name.encode("utf-8", "backslashreplace").decode("utf-8", "replace")[:120]
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        raise ArchiveRefused(
            "invalid_member_name", f"archive member name {shown!r} is not UTF-8; rename the file"
        ) from None
    if len(raw) > MAX_NAME_BYTES or any(len(p.encode()) > MAX_COMPONENT_BYTES for p in name.split("/")):
        raise ArchiveRefused(
            "invalid_member_name",
            f"archive member name {shown!r}… is too long (at most {MAX_COMPONENT_BYTES} bytes per "
            f"component and {MAX_NAME_BYTES} in all)",
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ArchiveRefused("invalid_member_name", f"archive member name {shown!r} holds control characters")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise ArchiveRefused("invalid_member_name", f"archive member {shown!r} leaves the archive's root")


def _members(tar: tarfile.TarFile, compressed: int, limits: ArchiveLimits) -> Iterator[tarfile.TarInfo]:
    """Members in stream order, each checked before its data is read or written."""
    total = 0
    allowed = min(limits.max_bytes, max(limits.ratio_floor_bytes, int(limits.max_ratio * compressed)))
    for count, member in enumerate(tar, start=1):
        if count > limits.max_files:
            raise ArchiveRefused(
                "archive_too_many_files", f"archive holds more than {limits.max_files} members"
            )
        _check_name(member.name)
        if member.issym() or member.islnk() or member.isdev() or not (member.isfile() or member.isdir()):
            raise ArchiveRefused(
                "invalid_member", f"archive member {member.name!r} is a link or device; not allowed"
            )
        total += member.size if member.isfile() else 0
        if total > limits.max_bytes:
            raise ArchiveRefused(
                "archive_too_large", f"archive unpacks to more than {limits.max_bytes} bytes"
            )
        if total > allowed:
            raise ArchiveRefused(
                "archive_ratio",
                f"archive expands more than {limits.max_ratio:g} times its {compressed} compressed "
                "bytes; refusing a likely decompression bomb",
            )
        yield member


def extract_archive(archive: Path, dest: Path, limits: ArchiveLimits | int | None = None) -> Path:
    """Unpack a .tar(.gz) safely: names, types, member count, size and ratio are checked
    on a first streaming pass that writes nothing; only a clean archive is then unpacked
    (no links, no paths leaving dest). Nothing is held in memory beyond one block."""
    if isinstance(limits, int):  # a bare byte limit, as older callers pass
        limits = ArchiveLimits(max_bytes=limits)
    limits = limits or ArchiveLimits()
    compressed = archive.stat().st_size
    try:
        with archive.open("rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as tar:
            for _ in _members(tar, compressed, limits):
                pass
        with archive.open("rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as tar:
            tar.extractall(dest, members=_members(tar, compressed, limits), filter="data")
    except BundleError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError) as exc:
        detail = "truncated" if isinstance(exc, EOFError) else type(exc).__name__
        raise ArchiveRefused(
            "invalid_archive", f"bundle archive is not a readable tar.gz ({detail}: {str(exc)[:120]})"
        ) from exc
    return dest


def bundle_root(unpacked: Path, entry: str) -> Path:
    """Archives made with `tar -C dir .` and ones with a single top folder both work.

    The root is where the entry is, or a Module Federation remote's mf-manifest.json."""

    def holds(d: Path) -> bool:
        return (d / entry).is_file() or (d / MF_MANIFEST).is_file()

    if holds(unpacked):
        return unpacked
    children = list(unpacked.iterdir())
    if len(children) == 1 and children[0].is_dir() and holds(children[0]):
        return children[0]
    return unpacked


class InvalidMfManifest(BundleError):
    """The bundle's mf-manifest.json is malformed or names an entry the bundle lacks.

    `field`: what the API names in its 422 (`bundle`, or `entry` when they contradict)."""

    code = "invalid_mf_manifest"

    def __init__(self, message: str, field: str = "bundle") -> None:
        super().__init__(message)
        self.field = field


def remote_manifest(root: Path) -> RemoteManifest | None:
    """The Module Federation 2 remote a bundle directory holds, or None without mf-manifest.json.

    Its remote entry must be a regular file inside the bundle (no symlink on the way)."""
    path = root / MF_MANIFEST
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(mode):
        raise InvalidMfManifest(f"{MF_MANIFEST} is not a regular file")
    with open_nofollow(path) as fh:
        data = fh.read(MAX_MANIFEST_BYTES + 1)
    try:
        remote = parse_mf_manifest(data)
    except FederationManifestError as exc:
        raise InvalidMfManifest(str(exc)) from None
    current = root
    for part in remote.entry.split("/"):
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except OSError:
            raise InvalidMfManifest(
                f"{MF_MANIFEST} names the remote entry {remote.entry!r}, which is not in the bundle"
            ) from None
        if stat.S_ISLNK(mode):
            raise InvalidMfManifest(f"the remote entry {remote.entry!r} goes through a symlink")
    if not stat.S_ISREG(mode):
        raise InvalidMfManifest(f"the remote entry {remote.entry!r} is not a regular file")
    return remote


def bundle_entry(root: Path, entry: str) -> tuple[str, RemoteManifest | None]:
    """The entry module to publish: a remote's container entry when the bundle is a Module
    Federation 2 remote, else `entry`. A remote entry that contradicts an `entry` set to
    something other than the default (index.js) is refused."""
    remote = remote_manifest(root)
    if remote is None:
        return entry, None
    if entry not in (DEFAULT_ENTRY, remote.entry):
        raise InvalidMfManifest(
            f"entry {entry!r} contradicts {MF_MANIFEST}, whose remote entry is {remote.entry!r}; "
            "leave `entry` unset for a Module Federation remote",
            "entry",
        )
    return remote.entry, remote
