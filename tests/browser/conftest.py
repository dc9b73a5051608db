"""Browser fixtures: one headless Debian Chromium per session, driven by Playwright."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright

from demo.browser import launch_chromium
from tests.browser.bundler import ensure_esbuild, ensure_shell_packages


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await launch_chromium(playwright)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture(scope="session")
def esbuild() -> Path:
    """esbuild from npm (`npm ci` in tests/browser/esbuild on first use)."""
    return ensure_esbuild()


@pytest.fixture(scope="session")
def shell_packages() -> Path:
    """node_modules with single-spa and web-vitals from npm (`npm ci` in tests/browser/npm)."""
    return ensure_shell_packages()
