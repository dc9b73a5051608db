"""The body of POST /rollouts from `rollout start`'s options, over an optional --spec file."""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

REQUIRED = {
    "apartment": "--apartment",
    "building": "--building",
    "unit_id": "--unit",
    "version": "--version",
    "bundle": "--bundle-dir, --bundle-archive or --upload-id",
}


@dataclass
class StrategyOptions:
    kind: str | None = None
    steps: str | None = None
    bake: float | None = None
    interval: float | None = None
    window: float | None = None
    min_requests: float | None = None
    max_error_rate: float | None = None
    max_p99: float | None = None


def load_spec(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        body = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {path} as JSON: {exc}", param_hint="--spec") from exc
    if not isinstance(body, dict):
        raise typer.BadParameter(
            "the spec must be a JSON object (the body of POST /rollouts)", param_hint="--spec"
        )
    return body


def parse_steps(text: str) -> list[float]:
    try:
        steps = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not a list of percentages like 5,25,50,100") from exc
    if not steps:
        raise typer.BadParameter("give at least one step, e.g. 5,25,50,100")
    return steps


def strategy_body(base: dict[str, Any], opts: StrategyOptions) -> dict[str, Any]:
    strategy = dict(base)
    kind = opts.kind or strategy.get("kind", "canary")
    if opts.kind is not None:
        strategy["kind"] = opts.kind
    if opts.steps is not None:
        if kind != "canary":
            raise typer.BadParameter(
                f"--steps applies to the canary strategy, not {kind}", param_hint="--steps"
            )
        strategy["steps"] = parse_steps(opts.steps)
    if opts.bake is not None:
        # an A/B test has no bake: it runs for a fixed duration
        strategy["duration_seconds" if kind == "ab_test" else "bake_seconds"] = opts.bake
    for key, value in (
        ("analysis_interval_seconds", opts.interval),
        ("analysis_window_seconds", opts.window),
        ("min_requests", opts.min_requests),
        ("max_error_rate", opts.max_error_rate),
        ("max_p99_seconds", opts.max_p99),
    ):
        if value is not None:
            strategy[key] = value
    return strategy


def merge(body: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Options given on the command line override the spec file's fields."""
    merged = dict(body)
    merged.update({k: v for k, v in fields.items() if v is not None})
    return merged


def missing_fields(body: dict[str, Any], bundle_given: bool) -> list[str]:
    return [
        option
        for key, option in REQUIRED.items()
        if not body.get(key) and not (key == "bundle" and bundle_given)
    ]


def pack_directory(root: Path) -> bytes:
    """tar.gz of the directory's contents (no top folder), as POST /bundles takes it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(root.rglob("*")):
            if path.is_symlink():
                raise typer.BadParameter(
                    f"{path} is a symlink; bundles hold real files", param_hint="--bundle-dir"
                )
            if path.is_file():
                tar.add(path, arcname=path.relative_to(root).as_posix(), recursive=False)
    return buffer.getvalue()
