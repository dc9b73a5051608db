"""JSON log lines: rollout id from Temporal's log context or rollout_context(), secrets masked."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from skyline.observability import JsonFormatter, configure_logging, rollout_context, secret_values
from skyline.settings import Settings


def record(message: str, *args: Any, **extra: Any) -> logging.LogRecord:
    rec = logging.LogRecord("skyline.test", logging.INFO, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_activity_context_gives_the_rollout_id_and_attempt() -> None:
    line = JsonFormatter().format(
        record(
            "activity completed in %.3f s",
            0.25,
            temporal_activity={
                "activity_type": "publish_bundle",
                "attempt": 2,
                "workflow_id": "rollout.shop.header",
                "workflow_run_id": "r-1",
            },
        )
    )
    entry = json.loads(line)
    assert entry["message"] == "activity completed in 0.250 s"
    assert entry["rollout_id"] == "rollout.shop.header"
    assert entry["activity"] == "publish_bundle" and entry["attempt"] == 2 and entry["run_id"] == "r-1"
    assert entry["level"] == "INFO" and entry["logger"] == "skyline.test"
    assert entry["ts"].endswith("+00:00")


def test_workflow_context_and_rollout_context() -> None:
    formatter = JsonFormatter()
    from_workflow = json.loads(
        formatter.format(record("x", temporal_workflow={"workflow_id": "rollout.a.b", "run_id": "r"}))
    )
    assert from_workflow["rollout_id"] == "rollout.a.b"
    with rollout_context("rollout.c.d"):
        assert json.loads(formatter.format(record("y")))["rollout_id"] == "rollout.c.d"
    assert "rollout_id" not in json.loads(formatter.format(record("z")))


def test_extras_and_exceptions_are_fields() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        rec = record("failed", error_type="EdgeStale")
        rec.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(rec))
    assert entry["error_type"] == "EdgeStale"
    assert "ValueError: boom" in entry["exception"]


def test_secret_values_are_masked_wherever_they_appear() -> None:
    settings = Settings(
        aws_secret_access_key=SecretStr("s3-secret-value"),
        temporal_api_key=SecretStr("tmprl-api-key"),
        fastly_api_token=SecretStr("fastly-token"),
    )
    secrets = secret_values(settings)
    assert {"s3-secret-value", "tmprl-api-key", "fastly-token"} <= set(secrets)
    # the access key id names a key (and is the bucket's name in the embedded defaults)
    assert settings.aws_access_key_id.get_secret_value() not in secrets
    formatter = JsonFormatter(secrets)
    line = formatter.format(
        record(
            "connecting with %s and %s", "tmprl-api-key", {"token": "fastly-token"}, note="s3-secret-value"
        )
    )
    for secret in ("s3-secret-value", "tmprl-api-key", "fastly-token"):
        assert secret not in line
    assert json.loads(line)["note"] == "**********"


@pytest.fixture()
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root")
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_configure_logging_is_idempotent_and_masks(fmt: str) -> None:
    settings = Settings(log_format=fmt, webhook_secret=SecretStr("whsec-123"))
    stream = io.StringIO()
    configure_logging(settings, stream)
    configure_logging(settings, stream)  # a second call replaces, never duplicates
    logging.getLogger("uvicorn.access").info("GET /rollouts?sig=%s", "whsec-123")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "whsec-123" not in lines[0] and "**********" in lines[0]
    if fmt == "json":
        assert json.loads(lines[0])["logger"] == "uvicorn.access"
