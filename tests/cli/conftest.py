"""The CLI through typer's runner, against the session stack's live API (and a secured copy of it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from api.auth import hash_token
from cli.main import app
from skyline.settings import Settings
from stack.embedded import EmbeddedStack
from tests.support.secured import api_process

ADMIN_TOKEN = "tok-cli-admin"


class Cli:
    """`skyline …` in-process, pointed at one API through the environment a user would set."""

    def __init__(self, api_url: str, token: str | None = None) -> None:
        # wide enough that tables never fold an id across lines
        self.env: dict[str, str | None] = {
            "SKYLINE_API_URL": api_url,
            "SKYLINE_TOKEN": token,
            "COLUMNS": "220",
        }
        self.runner = CliRunner()

    def __call__(self, *args: str, token: str | None = None) -> Result:
        env = dict(self.env)
        if token is not None:
            env["SKYLINE_TOKEN"] = token
        return self.runner.invoke(app, list(args), env=env, catch_exceptions=False)

    def json(self, *args: str, token: str | None = None) -> Any:
        result = self("--output", "json", *args, token=token)
        assert result.exit_code == 0, (result.exit_code, result.output)
        return json.loads(result.stdout)


def refused(result: Result, *fragments: str) -> None:
    """Exit 1 with the API's message (and field) on stderr, nothing on stdout."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert result.stdout == ""
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


@pytest.fixture(scope="session")
def api_url(settings: Settings) -> str:
    return f"http://{settings.api_host}:{settings.api_port}"


@pytest.fixture
def cli(api_url: str) -> Cli:
    return Cli(api_url)


@pytest.fixture(scope="module")
def secured_url(stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second API process over the same stack, with auth on and one configured admin."""
    tokens = json.dumps([f"cli-admin:admin:{hash_token(ADMIN_TOKEN)}"])
    log = tmp_path_factory.mktemp("cli-secured-api") / "api.log"
    with api_process(stack, log, {"SKYLINE_AUTH_TOKENS": tokens}, "cli-secured-api") as (url, _):
        yield url
