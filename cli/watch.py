"""`skyline rollout|fleet watch`: poll the status and draw it live until the rollout ends."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer
from rich.text import Text

from cli import render
from cli.client import Api, Session, segment
from cli.errors import ApiUnavailable, RolloutEndedBadly, WatchTimedOut

if TYPE_CHECKING:
    from rich.console import RenderableType

BAD_ENDINGS = frozenset({"rolled_back", "failed"})
# A watch of an hour-long rollout should survive an API restart; a dead API should not hang it.
TRANSIENT_FAILURES = 5


def _poll(api: Api, path: str, interval: float) -> dict[str, Any]:
    failures = 0
    while True:
        try:
            status: dict[str, Any] = api.get(path)
            return status
        except ApiUnavailable:
            failures += 1
            if failures >= TRANSIENT_FAILURES:
                raise
            time.sleep(interval)


def watch_until_end(
    session: Session,
    path: str,
    name: str,
    view: Callable[[dict[str, Any]], RenderableType],
    interval: float,
    timeout: float | None,
    show_weight: bool = True,
) -> tuple[dict[str, Any], bool]:
    """Poll `path`, drawing `view` live and each new history entry, until the state is final.

    Returns the last status and whether `timeout` ran out first.
    """
    # Here, not at the top: skyline.rollout brings pydantic, which `skyline --help` should not wait for.
    from rich.live import Live

    from skyline.rollout import TERMINAL_STATES

    deadline = None if timeout is None else time.monotonic() + timeout
    status: dict[str, Any] = session.api.get(path)  # a 404 or dead API fails at once, not after retries
    live = None if session.json else Live(view(status), console=render.out(), refresh_per_second=4)
    seen = 0
    timed_out = False
    try:
        if live is not None:
            live.start()
        while True:
            history = status.get("history") or []
            if live is not None:
                for entry in history[seen:]:
                    live.console.print(render.history_line(entry, show_weight))
                live.update(view(status))
            seen = len(history)
            if status["state"] in TERMINAL_STATES:
                break
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                timed_out = True
                break
            time.sleep(interval if remaining is None else min(interval, remaining))
            status = _poll(session.api, path, interval)
    except KeyboardInterrupt:
        # Ctrl-C stops the watching, never the rollout; 130 is the shell's code for it
        render.err().print(f"stopped watching; {name} goes on ({status['state']})")
        raise typer.Exit(130) from None
    finally:
        if live is not None:
            live.stop()
            # Off a terminal rich leaves its last frame without a line end (it ends the line
            # itself only on a terminal); the next output, or the shell prompt, would join it.
            if not live.console.is_terminal:
                live.console.line()
    return status, timed_out


def follow_to_end(
    session: Session,
    path: str,
    name: str,
    view: Callable[[dict[str, Any]], RenderableType],
    summary: Callable[[dict[str, Any]], str],
    interval: float,
    timeout: float | None,
    show_weight: bool = True,
) -> dict[str, Any]:
    """Watch until the end; raises when it ended badly or the timeout ran out first.

    `summary` words the success line after the final state, e.g. ": header@1.1.0 → shop/header".
    """
    status, timed_out = watch_until_end(session, path, name, view, interval, timeout, show_weight)
    if session.json:
        render.print_json(status)
    state = status["state"]
    if timed_out:
        raise WatchTimedOut(f"{name} is still {state} after {timeout:g} s")
    if state in BAD_ENDINGS:
        raise RolloutEndedBadly(f"{name} {state}: {status.get('reason') or 'no reason given'}")
    if not session.json:
        render.out().print(Text.assemble(render.state_text(state), summary(status)))
    return status


def _rollout_summary(status: dict[str, Any]) -> str:
    line = f": {status['unit_id']}@{status['version']} → {status['apartment']}/{status['building']}"
    return f"{line} ({status['reason']})" if status.get("reason") else line


def follow(session: Session, rollout_id: str, interval: float, timeout: float | None) -> dict[str, Any]:
    """The final status; raises when it ended badly or the timeout ran out first."""
    path = f"/rollouts/{segment(rollout_id)}"
    return follow_to_end(session, path, rollout_id, render.watch_view, _rollout_summary, interval, timeout)
