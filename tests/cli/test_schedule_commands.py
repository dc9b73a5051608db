"""`skyline schedule …` against the live API: a scheduled promotion triggered from the CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from skyline.settings import Settings
from tests.cli.conftest import Cli, refused
from tests.support.rum import RumTarget
from tests.support.scenario import create_apartment, make_bundle, unique, wait_state

pytestmark = pytest.mark.asyncio(loop_scope="session")


def wait_gone(cli: Cli, schedule_id: str) -> None:
    """The rollout deletes its schedule when it ends; poll for that."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if cli("schedule", "describe", schedule_id).exit_code == 1:
            return
        time.sleep(0.3)
    raise AssertionError(f"{schedule_id} still exists")


async def test_a_scheduled_promotion_steered_from_the_cli(
    cli: Cli, api: httpx.AsyncClient, rum: RumTarget, settings: Settings, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    bundle = make_bundle(tmp_path / "dist", "2.0.0")
    with rum.traffic(apartment, "header", "header", "2.0.0"):
        rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "2.0.0")
        created = cli.json(
            "rollout", "start", "-a", apartment, "-b", "header", "-u", "header", "-V", "2.0.0",
            "--bundle-dir", str(bundle), "--steps", "100", "--bake", "1",
            "--interval", "1", "--window", "10", "--min-requests", "5", "--no-confirm-first-unit",
            "--promotion", "scheduled", "--cron", "0 3 1 1 *", "--timezone", "Asia/Seoul",
        )  # fmt: skip
        rollout_id = created["id"]
        schedule_id = f"promote.{rollout_id}"
        listed = cli.json("schedule", "list")
        assert schedule_id in [s["id"] for s in listed]
        view = cli.json("schedule", "describe", f"{apartment}/header")  # the rollout names its schedule
        assert view["id"] == schedule_id and view["rollout_id"] == rollout_id
        assert view["cron"] == ["0 3 1 1 *"] and view["timezone"] == "Asia/Seoul" and view["next_runs"]
        table = cli("schedule", "list")
        assert table.exit_code == 0 and schedule_id in table.stdout and "Asia/Seoul" in table.stdout

        held = await wait_state(api, rollout_id, {"paused", "succeeded", "rolled_back", "failed"})
        assert held["state"] == "paused" and held["paused_reason"].startswith("awaiting scheduled promotion")

        paused = cli.json("schedule", "pause", schedule_id, "--note", "not before the demo")
        assert paused["paused"] and paused["note"] == "not before the demo"
        assert "yes" in cli("schedule", "describe", schedule_id).stdout
        assert not cli.json("schedule", "unpause", schedule_id)["paused"]
        triggered = cli("schedule", "trigger", schedule_id)
        assert triggered.exit_code == 0, triggered.output
        final = await wait_state(api, rollout_id, {"succeeded", "rolled_back", "failed"})
    assert final["state"] == "succeeded", final["reason"]
    assert [h["actor"] for h in final["history"] if h["action"] == "promote full"][0].startswith("schedule:")
    wait_gone(cli, schedule_id)


async def test_create_and_delete_a_schedule_and_its_errors(cli: Cli) -> None:
    rollout_id = f"rollout.{unique('shop')}.header"
    schedule_id = f"promote.{rollout_id}"
    made = cli.json("schedule", "create", "--rollout", rollout_id, "--cron", "0 3 1 1 *", "--timezone", "UTC")
    try:
        assert made["id"] == schedule_id and made["cron"] == ["0 3 1 1 *"]
        refused(
            cli("schedule", "create", "--rollout", rollout_id, "--cron", "0 3 1 1 *"),
            "409",
            "exists; delete it first",
        )
    finally:
        deleted = cli("--output", "json", "schedule", "delete", schedule_id)
    assert deleted.exit_code == 0 and json.loads(deleted.stdout) == {"deleted": schedule_id}
    refused(cli("schedule", "describe", schedule_id), "404", f"no schedule {schedule_id!r}")
    refused(cli("schedule", "trigger", schedule_id), "404")
    refused(cli("schedule", "delete", schedule_id), "404")

    other = f"rollout.{unique('shop')}.header"
    refused(
        cli("schedule", "create", "--rollout", other, "--cron", "0 3 1 1 *", "--timezone", "Mars/Olympus"),
        "422",
        "unknown time zone",
        "field: timezone",
    )
    refused(
        cli("schedule", "create", "--rollout", "not-a-rollout", "--cron", "0 3 1 1 *"), "422", "rollout_id"
    )
    assert cli("schedule", "create", "--cron", "0 3 1 1 *").exit_code == 2  # --rollout is required
