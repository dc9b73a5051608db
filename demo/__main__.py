"""`python -m demo` (= `make demo`): the whole loop on a fresh embedded stack."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

import httpx

from adapters.storage import s3_client
from demo.browser import launch_chromium
from demo.scenario import Demo, DemoResult, Timing
from skyline.settings import Settings
from stack.embedded import EmbeddedStack, StackPorts
from stack.processes import StackError


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=3, help="concurrent Chromium pages (default 3)")
    parser.add_argument("--rate", type=float, default=8.0, help="page loads per second (default 8)")
    parser.add_argument("--bake", type=float, default=20.0, help="bake seconds per step (default 20)")
    parser.add_argument(
        "--hold",
        choices=("auto", "yes", "no"),
        default="auto",
        help="keep the stack up at the end for the Temporal UI (auto: when on a terminal)",
    )
    return parser.parse_args(argv)


async def _screenshot(url: str, path: Path) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 640})
            await page.goto(f"{url}?skyline_user=demo-visitor")
            await page.wait_for_function("() => window.skyline && window.skyline.done", timeout=20_000)
            await page.screenshot(path=str(path))
        finally:
            await browser.close()


def _settings(stack: EmbeddedStack) -> Settings:
    return Settings.model_validate({k.removeprefix("SKYLINE_").lower(): v for k, v in stack.env().items()})


async def _run(stack: EmbeddedStack, timing: Timing) -> DemoResult:
    settings = _settings(stack)
    ui = next(url for name, url in stack.endpoints() if name == "Temporal UI")
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as api:
        demo = Demo(
            api,
            s3_client(settings),
            settings,
            api_url=stack.api_url,
            temporal_ui=ui,
            workdir=stack.bundle_root / "demo",  # bundle.path must be under the bundle root
            timing=timing,
            say=lambda line: print(line, flush=True),
        )
        result = await demo.run()
    shot = stack.state_dir / "demo-shell.png"
    await _screenshot(result.shell_url, shot)
    print(f"\nscreenshot of the shell: {shot}", flush=True)
    return result


def _summary(result: DemoResult) -> bool:
    ok = result.healthy.state == "succeeded" and result.faulty.state == "rolled_back"
    print("\nSkyline demo summary", flush=True)
    for label, outcome, want in (
        ("healthy catalog@1.1.0", result.healthy, "succeeded"),
        ("faulty  catalog@1.2.0", result.faulty, "rolled_back"),
    ):
        mark = "ok " if outcome.state == want else "!! "
        weights = " → ".join(f"{w:g}%" for w in outcome.weights)
        print(f"  {mark}{label}: {outcome.state} after {weights} ({outcome.analyses} analyses)", flush=True)
        print(f"       {outcome.reason}", flush=True)
        print(f"       {outcome.ui_url}", flush=True)
    print(f"  synthetic users: {result.users.stats.line()}", flush=True)
    print(f"  shell: {result.shell_url}", flush=True)
    return ok


def _hold(mode: str) -> None:
    if mode == "no" or (mode == "auto" and not sys.stdin.isatty()):
        return
    print("\nThe stack stays up so you can open the links above. Press Ctrl-C to stop.", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with contextlib.suppress(KeyboardInterrupt):
        stopped.wait()


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    timing = Timing(users=args.users, loads_per_second=args.rate, bake_seconds=args.bake)
    # Every synthetic user posts from 127.0.0.1: one client to the beacon rate limit.
    os.environ.setdefault("SKYLINE_BEACON_RATE_PER_SECOND", "500")
    os.environ.setdefault("SKYLINE_BEACON_BURST", "1000")
    state = Path(tempfile.mkdtemp(prefix="skyline-demo-"))
    stack = EmbeddedStack(
        state,
        StackPorts(),
        prometheus_scrape_interval="1s",
        progress=lambda message: print(f"  stack: {message}", flush=True),
    )
    try:
        stack.check_ports()
    except StackError as exc:
        print(f"  default ports busy ({exc}); using free ports", flush=True)
        stack.ports = StackPorts.ephemeral()
    print(f"Skyline demo — state and logs in {state}", flush=True)
    try:
        stack.start()
        for name, url in stack.endpoints():
            print(f"  {name:<16} {url}", flush=True)
        result = asyncio.run(_run(stack, timing))
        ok = _summary(result)
        _hold(args.hold)
        return 0 if ok else 1
    except KeyboardInterrupt:
        return 130
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
