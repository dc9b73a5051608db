"""The body of POST /rollouts (and /fleets) from `start`'s options, over an optional --spec file."""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.client import Api


class StrategyKind(StrEnum):
    canary = "canary"
    linear = "linear"
    exponential = "exponential"
    immediate = "immediate"
    blue_green = "blue_green"
    ab_test = "ab_test"


class FrameworkKind(StrEnum):
    """skyline.manifest.Framework as a typer choice (a test keeps the two equal)."""

    react = "react"
    preact = "preact"
    vue = "vue"
    svelte = "svelte"
    angular = "angular"
    wasm = "wasm"
    vanilla = "vanilla"
    solid = "solid"
    lit = "lit"
    unknown = "unknown"


# Options `rollout start` and `fleet start` share: the bundle and the strategy.
BundleDir = Annotated[
    Path | None,
    typer.Option(
        help="bundle directory the worker reads (absolute there); with --upload, packed and uploaded"
    ),
]
BundleArchive = Annotated[
    Path | None,
    typer.Option(exists=True, dir_okay=False, readable=True, help="a .tar.gz, uploaded with POST /bundles"),
]
Upload = Annotated[bool, typer.Option(help="upload --bundle-dir instead of passing its path")]
UploadId = Annotated[str | None, typer.Option(help="a bundle uploaded earlier (POST /bundles)")]
Entry = Annotated[str | None, typer.Option(help="entry module inside the bundle [API default: index.js]")]
Strategy = Annotated[StrategyKind | None, typer.Option(help="strategy kind [API default: canary]")]
Framework = Annotated[
    FrameworkKind | None,
    typer.Option(help="what the unit is built with [default: what the bundle says, else unknown]"),
]
Steps = Annotated[str | None, typer.Option(help="canary weights in percent, e.g. 5,25,50,100")]
Bake = Annotated[float | None, typer.Option(help="seconds to observe each step (ab_test: duration)")]
AnalysisInterval = Annotated[float | None, typer.Option("--interval", help="seconds between analyses")]
Window = Annotated[float | None, typer.Option(help="seconds of metrics each analysis reads")]
MinRequests = Annotated[
    float | None, typer.Option(help="canary loads a step needs before it may move on [API default: 50]")
]
ConfirmFirstUnit = Annotated[
    bool | None,
    typer.Option(
        "--confirm-first-unit/--no-confirm-first-unit",
        help="with no baseline figures to compare, hold the last step for a human [API default: confirm]",
        show_default=False,
    ),
]
MaxErrorRate = Annotated[float | None, typer.Option(help="failed loads / loads, e.g. 0.01")]
MaxP99 = Annotated[float | None, typer.Option(help="p99 bundle load time in seconds")]
Force = Annotated[bool, typer.Option(help="allow a version not greater than the active one")]
SpecFile = Annotated[
    Path | None,
    typer.Option(exists=True, dir_okay=False, help="JSON request body; options given override its fields"),
]

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
    confirm_first_unit: bool | None = None


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
        ("first_unit_needs_confirmation", opts.confirm_first_unit),
    ):
        if value is not None:
            strategy[key] = value
    return strategy


@dataclass
class BundleOptions:
    directory: Path | None = None
    archive: Path | None = None
    upload: bool = False
    upload_id: str | None = None

    @property
    def given(self) -> bool:
        return any(x is not None for x in (self.directory, self.archive, self.upload_id))


def start_body(
    api: Api,
    body: dict[str, Any],
    strategy: StrategyOptions,
    bundle: BundleOptions,
    required: dict[str, str],
    fallback_actor: str,
    **fields: Any,
) -> dict[str, Any]:
    """--spec's body with the options given over it; refuses what is missing, uploads the bundle."""
    new_strategy = strategy_body(body.get("strategy") or {}, strategy)
    body = merge(body, strategy=new_strategy or None, **fields)
    body.setdefault("actor", fallback_actor)
    missing = missing_fields(body, bundle.given, required)
    if missing:
        raise typer.BadParameter(f"missing {', '.join(missing)} (or set them in --spec)")
    source = bundle_source(api, bundle.directory, bundle.archive, bundle.upload, bundle.upload_id)
    if source is not None:
        body["bundle"] = source
    return body


def merge(body: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Options given on the command line override the spec file's fields."""
    merged = dict(body)
    merged.update({k: v for k, v in fields.items() if v is not None})
    return merged


def missing_fields(
    body: dict[str, Any], bundle_given: bool, required: dict[str, str] = REQUIRED
) -> list[str]:
    return [
        option
        for key, option in required.items()
        if not body.get(key) and not (key == "bundle" and bundle_given)
    ]


def _upload(api: Api, name: str, data: bytes) -> str:
    uploaded = api.request("POST", "/bundles", files={"bundle": (name, data, "application/gzip")})
    return str(uploaded["upload_id"])


def bundle_source(
    api: Api, bundle_dir: Path | None, archive: Path | None, upload: bool, upload_id: str | None
) -> dict[str, str] | None:
    """The request's `bundle`: a worker-side path, or an upload made here first."""
    given = [x for x in (bundle_dir, archive, upload_id) if x is not None]
    if len(given) > 1:
        raise typer.BadParameter("give one of --bundle-dir, --bundle-archive or --upload-id")
    if upload and bundle_dir is None:
        raise typer.BadParameter("--upload packs a --bundle-dir; give one", param_hint="--upload")
    if archive is not None:
        return {"upload_id": _upload(api, archive.name, archive.read_bytes())}
    if upload_id is not None:
        return {"upload_id": upload_id}
    if bundle_dir is None:
        return None
    if upload:
        if not bundle_dir.is_dir():
            raise typer.BadParameter(f"{bundle_dir} is not a directory", param_hint="--bundle-dir")
        return {
            "upload_id": _upload(api, f"{bundle_dir.name or 'bundle'}.tar.gz", pack_directory(bundle_dir))
        }
    # A path is read by the worker: it must name the same directory over there.
    return {"path": str(bundle_dir.expanduser().absolute())}


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
