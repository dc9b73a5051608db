"""Exit codes scripts rely on, and the failures that map to them."""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class Exit(IntEnum):
    OK = 0
    REFUSED = 1  # the API answered 4xx: the request needs fixing
    USAGE = 2  # typer/click's own code for bad options
    ENDED_BADLY = 3  # `watch`: the rollout was rolled back or failed
    UNAVAILABLE = 4  # no answer from the API, or a 5xx
    TIMED_OUT = 5  # `watch --timeout` ran out before the rollout ended


# "\b": click's help formatter keeps the block's line breaks instead of rewrapping it.
EXIT_CODES_HELP = (
    "\b\nExit codes:\n"
    "0  ok\n"
    "1  the API refused the request (4xx); its message and field are printed\n"
    "2  usage error (bad or missing options)\n"
    "3  the watched rollout was rolled back or failed\n"
    "4  the API cannot be reached, or answered 5xx\n"
    "5  watch --timeout ran out before the rollout ended"
)


class CliFailure(Exception):
    """Ends the command with `code`; `body` is what `--output json` prints on stdout."""

    code: Exit = Exit.REFUSED

    def __init__(self, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.body = body


class ApiRefused(CliFailure):
    code = Exit.REFUSED

    def __init__(self, status: int, code: str, message: str, field: str | None, body: dict[str, Any]) -> None:
        super().__init__(message, body)
        self.status, self.error_code, self.field = status, code, field


class ApiUnavailable(CliFailure):
    code = Exit.UNAVAILABLE


class RolloutEndedBadly(CliFailure):
    code = Exit.ENDED_BADLY


class WatchTimedOut(CliFailure):
    code = Exit.TIMED_OUT
