"""A second real API process with auth on (tokens of each role), next to the session's stack."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from api.auth import hash_token
from stack.embedded import EmbeddedStack
from stack.processes import ManagedProcess, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
TOKENS = {"viewer": "tok-viewer-m", "deployer": "tok-deployer-m", "admin": "tok-admin-m"}
NAMES = {"viewer": "mvera", "deployer": "mdev", "admin": "mada"}
ROLES = ("anonymous", "viewer", "deployer", "admin")


def bearer(role: str) -> dict[str, str]:
    return {} if role == "anonymous" else {"authorization": f"Bearer {TOKENS[role]}"}


def auth_tokens_env() -> str:
    return json.dumps([f"{NAMES[r]}:{r}:{hash_token(t)}" for r, t in TOKENS.items()])


@contextmanager
def api_process(
    stack: EmbeddedStack, log: Path, env: Mapping[str, str], name: str = "api"
) -> Iterator[tuple[str, ManagedProcess]]:
    """uvicorn api.main:app over the session stack on a free loopback port, with `env` on top of
    the stack's environment; yields its URL once /healthz answers, stops it after."""
    port = free_port()
    process = ManagedProcess(
        name,
        [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port)],
        log,
        env={**os.environ, **stack.env(), "SKYLINE_API_PORT": str(port), **env},
        cwd=ROOT,
    )
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(url + "/healthz").status_code == 200, 60, name, process)
        yield url, process
    finally:
        process.stop()


@contextmanager
def secured_api(
    stack: EmbeddedStack, logs: Path, extra_env: Mapping[str, str] | None = None
) -> Iterator[tuple[str, ManagedProcess]]:
    """An API process with SKYLINE_AUTH_TOKENS set to the tokens above; yields its URL."""
    env = {"SKYLINE_AUTH_TOKENS": auth_tokens_env(), **(extra_env or {})}
    with api_process(stack, logs / "api.log", env, "secured-api") as running:
        yield running
