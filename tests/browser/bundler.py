"""esbuild from npm for the browser tests: real micro-frontend bundles.

Installed like Chromium is, by the test setup: `npm ci` into
tests/browser/esbuild/node_modules from the committed package.json and
package-lock.json (the npm registry, never a binary download of our own).
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent / "esbuild"
ESBUILD = HERE / "node_modules" / ".bin" / "esbuild"


class BundlerMissing(RuntimeError):
    pass


def ensure_esbuild() -> Path:
    """The esbuild binary, installed with `npm ci` on first use (one installer at a time)."""
    if ESBUILD.exists():
        return ESBUILD
    npm = shutil.which("npm")
    if npm is None:
        raise BundlerMissing("npm is not installed: `make browser` installs nodejs (Debian's, with npm)")
    with open(HERE / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ESBUILD.exists():
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=HERE,
                check=True,
                timeout=600,
            )
    if not ESBUILD.exists():
        raise BundlerMissing(f"`npm ci` in {HERE} did not install esbuild")
    return ESBUILD


def build(esbuild: Path, sources: Path, entry: str, out: Path) -> Path:
    """`esbuild <entry> --bundle --format=esm --splitting --sourcemap --outdir=<out>`, in `sources`."""
    subprocess.run(
        [
            str(esbuild),
            entry,
            "--bundle",
            "--format=esm",
            "--splitting",
            "--sourcemap",
            f"--outdir={out}",
            "--log-level=warning",
        ],
        cwd=sources,
        check=True,
        timeout=120,
    )
    return out
