"""What the CLI decides before any request: the rollout body, id shorthands, global -o, help."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import typer
from pydantic import ValidationError
from typer.testing import CliRunner

from adapters.bundles import extract_archive, scan_bundle
from cli.main import app, hoist_output
from cli.options import rollout_ref, schedule_ref
from cli.spec import StrategyOptions, load_spec, merge, missing_fields, pack_directory, strategy_body
from skyline.rollout import RolloutSpec
from tests.support.scenario import make_bundle


def test_options_override_the_spec_file_and_validate_as_a_rollout_spec(tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(
        json.dumps(
            {
                "apartment": "shop",
                "building": "header",
                "unit_id": "header",
                "version": "1.0.0",
                "bundle": {"path": "/srv/b"},
                "strategy": {"kind": "canary", "steps": [10, 100], "max_error_rate": 0.05},
            }
        )
    )
    base = load_spec(spec_file)
    strategy = strategy_body(base["strategy"], StrategyOptions(steps="5,25,100", bake=30, max_p99=0.5))
    body = merge(base, version="1.2.0", strategy=strategy, reason=None)
    parsed = RolloutSpec.model_validate(body)
    assert parsed.version == "1.2.0"
    dumped = parsed.strategy.model_dump()
    assert dumped["steps"] == [5, 25, 100] and dumped["bake_seconds"] == 30
    assert dumped["max_error_rate"] == 0.05 and dumped["max_p99_seconds"] == 0.5
    assert missing_fields(body, bundle_given=False) == []
    assert missing_fields({"apartment": "shop"}, bundle_given=True) == ["--building", "--unit", "--version"]


def test_ab_test_bake_is_its_duration_and_steps_belong_to_canaries() -> None:
    ab = strategy_body({}, StrategyOptions(kind="ab_test", bake=120))
    assert ab == {"kind": "ab_test", "duration_seconds": 120}
    with pytest.raises(typer.BadParameter, match="canary"):
        strategy_body({}, StrategyOptions(kind="linear", steps="5,100"))
    with pytest.raises(typer.BadParameter, match="percentages"):
        strategy_body({}, StrategyOptions(steps="five,100"))
    with pytest.raises(ValidationError):  # the API's model still judges the values
        RolloutSpec.model_validate(
            {
                "apartment": "a",
                "building": "b",
                "unit_id": "u",
                "version": "1.0.0",
                "bundle": {"path": "/x"},
                "strategy": strategy_body({}, StrategyOptions(steps="50,25")),
            }
        )


def test_a_spec_that_is_not_a_json_object_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "spec.json"
    bad.write_text("[1, 2]")
    with pytest.raises(typer.BadParameter, match="JSON object"):
        load_spec(bad)
    bad.write_text("{nope")
    with pytest.raises(typer.BadParameter, match="as JSON"):
        load_spec(bad)


def test_packed_directory_unpacks_with_the_apis_extractor(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "dist", "3.0.0")
    archive = tmp_path / "bundle.tar.gz"
    archive.write_bytes(pack_directory(bundle))
    with tarfile.open(archive) as tar:
        assert all(not name.startswith(("/", "dist")) for name in tar.getnames())
    root = extract_archive(archive, tmp_path / "out", 10_000_000)
    assert sorted(f.relpath for f in scan_bundle(root, "index.js")) == sorted(
        f.relpath for f in scan_bundle(bundle, "index.js")
    )
    (bundle / "link.js").symlink_to(bundle / "index.js")
    with pytest.raises(typer.BadParameter, match="symlink"):
        pack_directory(bundle)


def test_shorthand_ids() -> None:
    assert rollout_ref("shop/header") == "rollout.shop.header"
    assert rollout_ref("rollout.shop.header") == "rollout.shop.header"
    assert schedule_ref("shop/header") == "promote.rollout.shop.header"
    assert schedule_ref("rollout.shop.header") == "promote.rollout.shop.header"
    assert schedule_ref("promote.rollout.shop.header") == "promote.rollout.shop.header"


def test_output_option_is_global_wherever_it_is_typed() -> None:
    assert hoist_output(["rollout", "get", "x", "-o", "json"]) == ["-o", "json", "rollout", "get", "x"]
    assert hoist_output(["rollout", "list", "--output=json", "-a", "s"]) == [
        "--output=json",
        "rollout",
        "list",
        "-a",
        "s",
    ]
    assert hoist_output(["-ojson", "rollout", "list"]) == ["-ojson", "rollout", "list"]
    assert hoist_output(["rollout", "pause", "x", "--", "-o", "json"]) == [
        "rollout",
        "pause",
        "x",
        "--",
        "-o",
        "json",
    ]


def test_help_documents_the_exit_codes() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    for line in (
        "0  ok",
        "1  the API refused",
        "2  usage error",
        "3  the watched rollout",
        "4  the API cannot",
    ):
        assert line in result.stdout
    assert "SKYLINE_API_URL" in result.stdout and "SKYLINE_TOKEN" in result.stdout


def test_the_framework_choice_is_the_manifest_framework() -> None:
    from typing import get_args

    from cli.spec import FrameworkKind
    from skyline.manifest import Framework

    assert [k.value for k in FrameworkKind] == list(get_args(Framework))


def test_the_documented_dry_run_spec_validates_and_moves_on_without_traffic() -> None:
    """docs/cli.md, *Your first rollout needs traffic*: a dry run whose bakes pass without traffic."""
    from skyline.figures import StepDocument
    from skyline.judge import judge_step

    text = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    snippet = text.split('`{"strategy"', 1)[1].split("}`;", 1)[0]
    strategy = json.loads(" ".join(('{"strategy"' + snippet + "}").split()))["strategy"]
    spec = RolloutSpec.model_validate(
        {"apartment": "shop", "building": "header", "unit_id": "header", "version": "1.0.0",
         "bundle": {"path": "/srv/b"}, "strategy": strategy}
    )  # fmt: skip
    [check] = spec.strategy.model_dump()["checks"]
    assert check["dry_run"] is True
    analysis = {
        k: v for k, v in spec.strategy.model_dump().items() if k not in ("kind", "steps", "bake_seconds")
    }
    for last in (False, True):
        doc = StepDocument.model_validate(
            {
                "analysis": analysis,
                "step": {"index": 0, "weight": 5, "bake_seconds": 30, "last": last},
                "looks": [{"at_seconds": 30, "canary": {"loads": 0, "errors": 0}, "baseline": None}],
            }
        )
        assert judge_step(doc).decision == "promote"
