"""Debian's Chromium driven by Playwright: never a browser Playwright downloads."""

from __future__ import annotations

import shutil
from pathlib import Path

from playwright.async_api import Browser, Playwright

CHROMIUM = "/usr/bin/chromium"

# Headless as root on a machine with no outside network: no sandbox (root), no
# GPU, and none of the background connections Chromium would retry forever.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class ChromiumMissing(RuntimeError):
    pass


def chromium_path() -> str:
    found = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    if found is None:
        raise ChromiumMissing(
            "Debian's chromium is not installed; `make test` installs it when root, "
            "otherwise run: sudo apt-get install -y chromium"
        )
    return found


async def launch_chromium(playwright: Playwright) -> Browser:
    """A fresh headless Chromium (Playwright gives it a new, empty --user-data-dir)."""
    return await playwright.chromium.launch(
        executable_path=chromium_path(), headless=True, args=list(CHROMIUM_ARGS)
    )
