"""`make demo`'s story on the test stack, faster: real Chromium users, real beacons, real analysis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser

from demo.scenario import Demo, Timing
from demo.units import faulty_user
from skyline.settings import Settings
from tests.browser.support import load_as, slot_text
from tests.conftest import ARTIFACTS
from tests.support.scenario import unique

pytestmark = pytest.mark.asyncio(loop_scope="session")

FAST = Timing(
    steps=(50, 100),
    bake_seconds=6,
    analysis_interval_seconds=2,
    analysis_window_seconds=10,
    min_requests=8,
    rollout_timeout_seconds=240,  # ~60 s on a quiet machine; two test suites side by side take longer
    # At 100 % the canary's load times are set against the baseline's from the 50 % step, and
    # here those are Chromium's on two cores shared with the rest of the suite: a load spike
    # between the steps held the healthy canary on load_time (fresh-clone CI, 2026-12-04). This
    # test is about the error-rate story; load-time judgement is measured by the judgement
    # benchmark and tests/e2e/test_judgement.py on figures that do not drift with the machine.
    latency_margin=0.45,
    gross_latency_margin=0.49,
    users=2,
    loads_per_second=8,
)


@pytest.mark.timeout(600)  # two rollouts of up to 240 s each when two suites share the 2 cores
async def test_healthy_rollout_is_promoted_and_faulty_one_rolled_back_by_browser_beacons(
    api: httpx.AsyncClient, s3: Any, settings: Settings, browser: Browser, tmp_path: Path
) -> None:
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        print(line, flush=True)  # in the test's captured output when anything fails

    demo = Demo(
        api,
        s3,
        settings,
        api_url=f"http://{settings.api_host}:{settings.api_port}",
        temporal_ui="http://temporal-ui.test",
        workdir=tmp_path,
        apartment=unique("demo"),
        timing=FAST,
        say=say,
    )
    result = await demo.run()
    log = "\n".join(lines)

    assert result.healthy.state == "succeeded", log
    assert result.healthy.weights == [50, 100], log
    assert result.faulty.state == "rolled_back", log
    assert "analysis failed: error_rate" in result.faulty.reason, log
    # The terminal told where to look in the Temporal UI, for each rollout.
    for outcome in (result.healthy, result.faulty):
        assert f"Temporal UI: {outcome.ui_url}" in log
        assert outcome.ui_url.endswith(f"/workflows/{outcome.rollout_id}/{outcome.run_id}/history")

    stats = result.users.stats
    assert stats.broken_pages == 0, stats
    # A page that loaded the faulty canary just before its rollback may report after
    # the manifest dropped it; such a late beacon is refused (unknown label). Seen
    # once in 232 page loads; anything beyond 1 % is a real fault.
    assert stats.beacon_failures <= max(1, stats.page_loads // 100), stats
    assert stats.outcomes[("catalog@1.1.0", "loaded")] > 0
    assert stats.outcomes[("catalog@1.2.0", "load_error")] > 0
    # Exactly the users the faulty build's chunk logic picks failed, nobody else.
    assert stats.failed and all(unit == "catalog@1.2.0" and faulty_user(user) for user, unit in stats.failed)

    # The screenshot of the demo shell, after the story: the promoted catalog.
    page = await browser.new_page(viewport={"width": 1100, "height": 640})
    report = await load_as(page, result.shell_url, "visitor-1", settings)
    assert {b: e["unit"] for b, e in report["buildings"].items()} == {
        "header": "header@1.0.0",
        "main": "catalog@1.1.0",
        "footer": "footer@1.0.0",
    }
    assert "Catalog — new look" in await slot_text(page, "main")
    shot = ARTIFACTS / "demo-shell.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    await page.close()
