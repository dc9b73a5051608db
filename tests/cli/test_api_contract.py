"""API behaviour the CLI relies on, found wrong while writing the CLI and fixed since.

Each test states the behaviour: validation before anything starts, one readable sentence per error.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import Result

from tests.cli.conftest import Cli, refused
from tests.support.scenario import create_apartment, make_bundle, unique

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def start_scheduled(
    cli: Cli, api: httpx.AsyncClient, tmp_path: Path, *schedule: str
) -> tuple[str, Result]:
    apartment = await create_apartment(api)
    result = cli(
        "rollout", "start", "-a", apartment, "-b", "header", "-u", "header", "-V", "2.0.0",
        "--bundle-dir", str(make_bundle(tmp_path / "dist", "2.0.0")), "--steps", "100", "--bake", "600",
        "--promotion", "scheduled", *schedule,
    )  # fmt: skip
    return f"rollout.{apartment}.header", result


async def cleanup(api: httpx.AsyncClient, rollout_id: str) -> None:
    if (await api.get(f"/rollouts/{rollout_id}")).status_code == 200:
        await api.post(f"/rollouts/{rollout_id}/rollback", json={"actor": "tests", "reason": "cleanup"})


async def test_unknown_promotion_time_zone_is_a_422_before_anything_starts(
    cli: Cli, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    rollout_id, result = await start_scheduled(
        cli, api, tmp_path, "--cron", "0 3 1 1 *", "--timezone", "Mars/Olympus"
    )
    try:
        refused(result, "422", "time zone")  # today: exit 4, "the API failed with 500"
        assert (await api.get(f"/rollouts/{rollout_id}")).status_code == 404
    finally:
        await cleanup(api, rollout_id)


async def test_a_refused_cron_starts_no_rollout(cli: Cli, api: httpx.AsyncClient, tmp_path: Path) -> None:
    rollout_id, result = await start_scheduled(cli, api, tmp_path, "--cron", "not a cron at all")
    try:
        refused(result, "422", "field: cron")
        # today the rollout runs anyway, waiting for a schedule that was never made,
        # and the corrected retry gets a 409
        assert (await api.get(f"/rollouts/{rollout_id}")).status_code == 404
    finally:
        await cleanup(api, rollout_id)


async def test_schedule_create_keeps_its_note(cli: Cli) -> None:
    rollout_id = f"rollout.{unique('shop')}.header"
    try:
        made = cli.json(
            "schedule", "create", "--rollout", rollout_id, "--cron", "0 3 1 1 *", "--note", "for QA"
        )
        assert made["note"] == "for QA"  # today: "promote <rollout> (created by anonymous)"
    finally:
        cli("schedule", "delete", rollout_id)


async def test_schedule_time_zone_error_is_one_readable_sentence(cli: Cli) -> None:
    result = cli("schedule", "create", "--rollout", f"rollout.{unique('shop')}.header", "--cron", "0 3 1 1 *",
                 "--timezone", "Mars/Olympus")  # fmt: skip
    refused(result, "unknown time zone 'Mars/Olympus'")
    assert "errors.pydantic.dev" not in result.stderr and "validation error for" not in result.stderr
