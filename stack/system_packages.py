"""Debian packages the embedded stack needs: varnish (varnishd), prometheus, redis-server.

Tests and `make demo` also drive a browser: Debian's chromium, and the
loader's tests need node (`ensure_browser`, `make browser`); `make run` needs neither.
The ingest benchmark needs wrk (`ensure_bench`, called by bench/ingest.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

# binary -> Debian package that provides it
REQUIRED_BINARIES: dict[str, str] = {
    "varnishd": "varnish",
    "prometheus": "prometheus",
    "redis-server": "redis-server",
}
# Playwright drives chromium (executable_path); it never downloads a browser.
# node runs the loader's own tests (`node --test loader/`) in `make test`.
BROWSER_BINARIES: dict[str, str] = {"chromium": "chromium", "node": "nodejs"}
# The ingest benchmark (bench/ingest.py) drives the beacon endpoints with wrk.
BENCH_BINARIES: dict[str, str] = {"wrk": "wrk"}

# varnishd is installed in /usr/sbin, which is often not on a non-root PATH.
SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")

POLICY_RC_D = Path("/usr/sbin/policy-rc.d")

_apt_updated = False  # `apt-get update` runs at most once per process

Runner = Callable[[Sequence[str], dict[str, str]], None]


class SystemPackagesError(RuntimeError):
    """A required Debian package is missing and cannot be installed from here."""


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in SBIN_DIRS:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def missing_packages(binaries: Mapping[str, str] = REQUIRED_BINARIES) -> list[str]:
    """Debian packages whose binary cannot be found, in a stable order."""
    return sorted({pkg for binary, pkg in binaries.items() if find_binary(binary) is None})


def install_command(packages: Sequence[str], sudo: bool) -> str:
    prefix = "sudo " if sudo else ""
    return f"{prefix}apt-get install -y {' '.join(packages)}"


def _run(argv: Sequence[str], env: dict[str, str]) -> None:
    subprocess.run(list(argv), env=env, check=True)


def ensure_system_packages(
    *, is_root: bool | None = None, runner: Runner = _run, binaries: Mapping[str, str] = REQUIRED_BINARIES
) -> dict[str, str]:
    """Install missing packages when root; returns {binary: path} for every required binary.

    Raises SystemPackagesError naming the exact command to run otherwise.
    While installing, a temporary policy-rc.d keeps Debian from starting the
    packages' own services (they would take ports 6081 and 9090).
    """
    missing = missing_packages(binaries)
    if missing:
        root = os.geteuid() == 0 if is_root is None else is_root
        if not root:
            raise SystemPackagesError(
                f"missing system package(s): {', '.join(missing)}. "
                f"Install them with: {install_command(missing, sudo=True)}"
            )
        if shutil.which("apt-get") is None:
            raise SystemPackagesError(
                f"missing system package(s): {', '.join(missing)} and no apt-get here; "
                f"install {', '.join(sorted(set(binaries.values())))} with your package manager"
            )
        global _apt_updated
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            with _services_not_started():
                if not _apt_updated:
                    runner(["apt-get", "update"], env)
                    _apt_updated = True
                runner(["apt-get", "install", "-y", "--no-install-recommends", *missing], env)
        except (subprocess.CalledProcessError, OSError) as exc:
            raise SystemPackagesError(
                f"installing {', '.join(missing)} failed ({exc}); try: {install_command(missing, sudo=False)}"
            ) from exc
        still = missing_packages(binaries)
        if still:
            raise SystemPackagesError(f"still missing after apt-get install: {', '.join(still)}")
    paths = {binary: find_binary(binary) for binary in binaries}
    return {binary: path for binary, path in paths.items() if path is not None}


@contextmanager
def _services_not_started(path: Path | None = None) -> Iterator[None]:
    """Install policy-rc.d (exit 101) for the duration, unless one already exists."""
    path = path or POLICY_RC_D
    created = False
    if not path.exists() and path.parent.is_dir():
        try:
            path.write_text("#!/bin/sh\n# skyline: do not start services while installing\nexit 101\n")
            path.chmod(0o755)
            created = True
        except OSError:
            created = False
    try:
        yield
    finally:
        if created:
            path.unlink(missing_ok=True)


def ensure_browser(*, is_root: bool | None = None, runner: Runner = _run) -> dict[str, str]:
    """Debian's chromium (browser tests, demo) and nodejs (loader tests); same rules as above."""
    return ensure_system_packages(is_root=is_root, runner=runner, binaries=BROWSER_BINARIES)


def ensure_bench(*, is_root: bool | None = None, runner: Runner = _run) -> dict[str, str]:
    """Debian's wrk (the ingest benchmark's load generator); same rules as above."""
    return ensure_system_packages(is_root=is_root, runner=runner, binaries=BENCH_BINARIES)


def main(argv: Sequence[str] | None = None) -> int:
    """Check (as root: install) the stack's packages, with ["browser"] chromium, with ["bench"]
    wrk; print paths."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args == ["browser"]:
            paths = ensure_browser()
        elif args == ["bench"]:
            paths = ensure_bench()
        else:
            paths = ensure_system_packages()
    except SystemPackagesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for binary, path in sorted(paths.items()):
        print(f"{binary}: {path}")
    return 0
