"""npm packages of the browser tests: esbuild (real micro-frontend bundles), and the
shell-side packages single-spa, web-vitals, @module-federation/runtime and import-map-overrides
(tests/browser/npm).

Installed like Chromium is, by the test setup: `npm ci` into
tests/browser/<dir>/node_modules from the committed package.json and
package-lock.json (the npm registry, never a binary download of our own).
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent / "esbuild"
ESBUILD = HERE / "node_modules" / ".bin" / "esbuild"
SHELL_PACKAGES = Path(__file__).resolve().parent / "npm"
# The ESM builds a shell page imports, inside SHELL_PACKAGES/node_modules.
SINGLE_SPA_ESM = "single-spa/lib/es2015/esm/single-spa.min.js"
WEB_VITALS_ESM = "web-vitals/dist/web-vitals.js"
# The Module Federation runtime a host bundles (tests/browser/test_module_federation.py).
MF_RUNTIME_ESM = "@module-federation/runtime/dist/index.js"
# A classic script (window.importMapOverrides), the JavaScript API without the UI.
IMPORT_MAP_OVERRIDES = "import-map-overrides/dist/import-map-overrides-api.js"


class BundlerMissing(RuntimeError):
    pass


# Written once `npm ci` finished (npm ci empties node_modules first, removing it): a second
# test process (`make test` runs two) never takes a half-installed tree for a whole one.
STAMP = ".skyline-installed"


def _installed(directory: Path, wanted: list[Path]) -> bool:
    return (directory / "node_modules" / STAMP).exists() and all(p.exists() for p in wanted)


def _npm_ci(directory: Path, wanted: list[Path]) -> None:
    """`npm ci` in `directory` unless a finished install is there (one installer at a time)."""
    if _installed(directory, wanted):
        return
    npm = shutil.which("npm")
    if npm is None:
        raise BundlerMissing("npm is not installed: `make browser` installs nodejs (Debian's, with npm)")
    with open(directory / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _installed(directory, wanted):
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=directory,
                check=True,
                timeout=600,
            )
            if all(p.exists() for p in wanted):
                (directory / "node_modules" / STAMP).touch()


def ensure_esbuild() -> Path:
    """The esbuild binary, installed with `npm ci` on first use (one installer at a time)."""
    _npm_ci(HERE, [ESBUILD])
    if not ESBUILD.exists():
        raise BundlerMissing(f"`npm ci` in {HERE} did not install esbuild")
    return ESBUILD


def ensure_shell_packages() -> Path:
    """node_modules of tests/browser/npm (single-spa, web-vitals, the MF runtime,
    import-map-overrides), `npm ci` on first use."""
    modules = SHELL_PACKAGES / "node_modules"
    wanted = [
        modules / SINGLE_SPA_ESM,
        modules / WEB_VITALS_ESM,
        modules / MF_RUNTIME_ESM,
        modules / IMPORT_MAP_OVERRIDES,
    ]
    _npm_ci(SHELL_PACKAGES, wanted)
    missing = [str(p) for p in wanted if not p.exists()]
    if missing:
        raise BundlerMissing(f"`npm ci` in {SHELL_PACKAGES} did not install {', '.join(missing)}")
    return modules


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
