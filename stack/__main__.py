"""`python -m stack run|check`: the embedded default stack in the foreground.

run    check/install system packages, start every component on the default
       ports, print where each listens, stay up until SIGINT/SIGTERM, then
       stop everything it started and exit 0.
check  only check (and, as root, install) the Debian packages.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from adapters.search_attributes import REGISTRATION
from skyline.settings import Settings
from stack.embedded import ALL_COMPONENTS, START_ORDER, EmbeddedStack, StackPorts
from stack.processes import StackError
from stack.system_packages import SystemPackagesError, ensure_system_packages

# Components that need the Debian packages.
_NEEDS_SYSTEM_PACKAGES = {"edge", "prometheus"}


class _Interrupted(BaseException):
    """SIGINT/SIGTERM while the stack is still starting."""


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the embedded stack in the foreground")
    run.add_argument("--state-dir", type=Path, default=None, help="default: settings.state_dir")
    run.add_argument(
        "--components",
        default=",".join(START_ORDER),
        help=f"comma-separated subset of {','.join(START_ORDER)} (default: all)",
    )
    run.add_argument(
        "--ephemeral-ports",
        action="store_true",
        help="pick free ports instead of the defaults (tests, a second stack)",
    )
    run.add_argument(
        "--scrape-interval",
        type=prometheus_duration,
        default="5s",
        help="Prometheus scrape interval: seconds (1, 0.5) or a Prometheus duration (5s, 500ms, 1m)",
    )
    for component in ("collectors", "workers"):
        run.add_argument(
            f"--{component}",
            type=int,
            default=1,
            help=f"{component} to start (default 1; extra replicas listen on free ports)",
        )
    sub.add_parser("check", help="check (as root: install) the required Debian packages")
    return parser.parse_args(argv)


_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


def prometheus_duration(value: str) -> str:
    """A Prometheus duration from seconds ("1" → "1s", "0.5" → "500ms") or a duration as is."""
    text = value.strip()
    if _DURATION.match(text):
        return text
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if seconds > 0 and math.isfinite(seconds):
        millis = round(seconds * 1000)
        if millis >= 1:
            return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"
    raise argparse.ArgumentTypeError(
        f"{value!r} is not a scrape interval: give seconds (1, 0.5) or a Prometheus duration (5s, 500ms, 1m)"
    )


# Components that keep no state of their own in memory: restarted in place if they die.
_RESTARTABLE = {"s3", "edge"}


def cli_path(python: str = sys.executable) -> str:
    """The `skyline` console script next to this interpreter (the venv's bin/), else `python -m cli`."""
    beside = Path(python).parent / "skyline"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("skyline")
    return found if found is not None else f"{python} -m cli"


def banner(stack: EmbeddedStack) -> str:
    """What `run` prints once the stack is up. Every http URL in it answers 200 (the S3 API to
    signed requests: stack/s3auth.py); tests/stack/test_banner.py fetches each."""
    rows = [
        *stack.endpoints(),
        ("Storage", str(stack.storage_dir)),
        ("Logs", str(stack.state_dir / "logs")),
        ("CLI", cli_path(stack.python)),
    ]
    width = max(len(name) for name, _ in rows)
    lines = ["", "Skyline stack is up:"]
    lines += [f"  {name.ljust(width)}  {url}" for name, url in rows]
    if stack.storage_mismatch:
        lost = ", ".join(sorted(stack.storage_mismatch))
        lines += ["", f"WARNING: storage and Temporal disagree: no manifest for apartment(s) {lost}"]
    lines += ["", "`skyline` is in the venv: run the CLI path above or `source .venv/bin/activate`"]
    if any(name == "Shell pages" for name, _ in rows):
        lines += ["Shell pages: a minimal shell per apartment, to watch a rollout in a browser"]
    lines += ["", "Press Ctrl-C to stop."]
    return "\n".join(lines)


def _print_table(stack: EmbeddedStack) -> None:
    print(banner(stack), flush=True)


def _check() -> int:
    try:
        paths = ensure_system_packages()
    except SystemPackagesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for binary, path in sorted(paths.items()):
        print(f"{binary}: {path}")
    return 0


def _run(args: argparse.Namespace) -> int:
    components = {c.strip() for c in str(args.components).split(",") if c.strip()}
    unknown = components - ALL_COMPONENTS
    if unknown:
        print(f"error: unknown component(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    if components & _NEEDS_SYSTEM_PACKAGES:
        try:
            ensure_system_packages()
        except SystemPackagesError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    settings = Settings()
    state_dir = args.state_dir if args.state_dir is not None else settings.state_dir
    ports = StackPorts.ephemeral() if args.ephemeral_ports else StackPorts()
    stack = EmbeddedStack(
        state_dir,
        ports,
        components,
        prometheus_scrape_interval=args.scrape_interval,
        settings=settings,
        # Registered with the dev server so the UI can filter rollouts from the first start.
        search_attributes=REGISTRATION,
        progress=lambda message: print(f"[stack] {message}", flush=True),
        collectors=args.collectors,
        workers=args.workers,
    )

    stopping = threading.Event()
    starting = True

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal starting
        stopping.set()
        if starting:  # abort start() once; it stops what it already started
            starting = False
            raise _Interrupted(signal.Signals(signum).name)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            stack.start()  # stops what it started if interrupted or failing
        except StackError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return 1
        except _Interrupted:
            return 0
        starting = False
        _print_table(stack)
        while not stopping.wait(1.0):
            dead = stack.dead()
            for process in [p for p in dead if p.name in _RESTARTABLE]:
                print(f"[stack] {process.name} exited with code {process.returncode}; restarting", flush=True)
                try:
                    stack.restart(process.name)
                except StackError as exc:
                    print(f"error: {exc}", file=sys.stderr, flush=True)
                    return 1
            dead = stack.dead()
            if dead:
                for process in dead:
                    print(
                        f"error: {process.name} exited with code {process.returncode}\n"
                        f"--- last lines of {process.log_path} ---\n{process.tail()}",
                        file=sys.stderr,
                        flush=True,
                    )
                return 1
        print("\n[stack] shutting down", flush=True)
        return 0
    finally:
        starting = False
        # A second Ctrl-C must not abort the shutdown half-way.
        for s in previous:
            signal.signal(s, signal.SIG_IGN)
        stack.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.command == "check":
        return _check()
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
