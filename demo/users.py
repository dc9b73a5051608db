"""Synthetic users: headless Chromium pages loading the shell, one new user per load.

Every load is a real page: the loader fetches the manifest through the edge,
picks units by the user's bucket, loads them with SRI and posts real beacons
to the API. Loads are paced (all users share one client address, and two
cores are shared with the whole stack).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from playwright.async_api import Browser, async_playwright
from playwright.async_api import Error as PlaywrightError

from demo.browser import launch_chromium

DONE = "() => window.skyline && window.skyline.done"


@dataclass
class LoadStats:
    page_loads: int = 0
    broken_pages: int = 0  # the loader never finished or the page failed to load
    beacon_failures: int = 0  # the beacon POST did not answer 202
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (unit, outcome)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (user, unit) of every load_error

    def line(self) -> str:
        parts = [f"{self.page_loads} page loads"]
        for (unit, outcome), n in sorted(self.outcomes.items()):
            parts.append(f"{unit} {outcome} {n}")
        if self.broken_pages or self.beacon_failures:
            parts.append(f"broken pages {self.broken_pages}, beacon failures {self.beacon_failures}")
        return " | ".join(parts)


def count_report(stats: LoadStats, report: dict[str, Any]) -> None:
    stats.page_loads += 1
    if report.get("beacon_status") != 202:
        stats.beacon_failures += 1
    for entry in (report.get("buildings") or {}).values():
        for attempt in entry.get("attempts", []):
            stats.outcomes[(attempt["unit"], attempt["outcome"])] += 1
            if attempt["outcome"] == "load_error":
                stats.failed.append((str(report.get("user")), attempt["unit"]))


class Pacer:
    """At most `rate` starts per second across all workers."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = time.monotonic()
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


class SyntheticUsers:
    def __init__(
        self,
        shell_url: str,
        *,
        concurrency: int = 3,
        rate: float = 8.0,
        prefix: str = "user",
        page_timeout_ms: float = 20_000,
        bucket_key: Callable[[str], str] | None = None,
    ) -> None:
        self.shell_url = shell_url
        # Each synthetic user is a returning browser with its own bucket key (signed with the
        # stack's beacon key, as the API would have issued it on a first visit).
        self.bucket_key = bucket_key
        self.concurrency = concurrency
        self.prefix = prefix
        self.page_timeout_ms = page_timeout_ms
        self.stats = LoadStats()
        self._pacer = Pacer(rate)
        self._ids = itertools.count()

    async def _worker(self, browser: Browser, stop: asyncio.Event) -> None:
        context = await browser.new_context()
        page = await context.new_page()
        try:
            while not stop.is_set():
                await self._pacer.wait()
                if stop.is_set():
                    break
                user = f"{self.prefix}-{next(self._ids)}"
                bucket = f"&skyline_bucket={self.bucket_key(user)}" if self.bucket_key else ""
                try:
                    await page.goto(
                        f"{self.shell_url}?skyline_user={user}{bucket}", timeout=self.page_timeout_ms
                    )
                    await page.wait_for_function(DONE, timeout=self.page_timeout_ms)
                    report = await page.evaluate("window.skyline.report")
                except PlaywrightError:
                    self.stats.broken_pages += 1
                    continue
                count_report(self.stats, report)
        finally:
            await context.close()

    async def run(self, stop: asyncio.Event) -> LoadStats:
        async with async_playwright() as playwright:
            browser = await launch_chromium(playwright)
            try:
                await asyncio.gather(*(self._worker(browser, stop) for _ in range(self.concurrency)))
            finally:
                await browser.close()
        return self.stats
