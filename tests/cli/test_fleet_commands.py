"""`skyline fleet …` against the live API: batches held apart, steered, watched to the end."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from skyline.settings import Settings
from tests.cli.conftest import Cli, refused
from tests.support.rum import RumTarget
from tests.support.scenario import create_apartment, make_bundle

pytestmark = pytest.mark.asyncio(loop_scope="session")

FAST = [
    "--steps",
    "100",
    "--bake",
    "1",
    "--interval",
    "1",
    "--window",
    "10",
    "--min-requests",
    "5",
    "--no-confirm-first-unit",
]
FLEET = "fleet.header.header"


@contextlib.contextmanager
def healthy_traffic(
    rum: RumTarget, settings: Settings, apartments: list[str], version: str
) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for apartment in apartments:
            stack.enter_context(rum.traffic(apartment, "header", "header", version))
        for apartment in apartments:
            rum.wait_visible(settings.prometheus_url, apartment, "header", "header", version)
        yield


def start_args(apartments: list[str], bundle: Path, *extra: str) -> list[str]:
    return [
        "fleet", "start", "-b", "header", "-u", "header", "-V", "2.0.0",
        "--apartments", ",".join(apartments), "--bundle-dir", str(bundle), *FAST, *extra,
    ]  # fmt: skip


def wait_fleet(cli: Cli, predicate: Any, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = cli.json("fleet", "get", "header/header")
        if predicate(status):
            return status
        time.sleep(0.3)
    raise AssertionError(f"the fleet never got there: {status}")


def first_done(apartments: list[str]) -> Any:
    """The first batch succeeded and the second waits out the pause between batches."""
    first, second = apartments

    def state(status: dict[str, Any], apartment: str) -> str | None:
        # apartments are listed once the bundle is published
        entry = status["apartments"].get(apartment)
        return None if entry is None else str(entry["state"])

    return lambda s: state(s, first) == "succeeded" and state(s, second) == "pending"


async def active_unit(api: httpx.AsyncClient, apartment: str) -> str:
    manifest = (await api.get(f"/apartments/{apartment}/manifest")).json()
    return str(manifest["apartments"][apartment]["buildings"]["header"]["active_unit"])


async def test_fleet_is_paused_resumed_promoted_past_its_batch_pause_and_watched_to_success(
    cli: Cli, api: httpx.AsyncClient, rum: RumTarget, settings: Settings, tmp_path: Path
) -> None:
    apartments = [await create_apartment(api) for _ in range(2)]
    bundle = make_bundle(tmp_path / "dist", "2.0.0")
    with healthy_traffic(rum, settings, apartments, "2.0.0"):
        started = cli(
            *start_args(apartments, bundle, "--batch-size", "1", "--batch-pause", "600"),
            *("--reason", "shared header", "--actor", "alice"),
        )
        assert started.exit_code == 0, started.output
        assert FLEET in started.stdout and "skyline fleet watch" in started.stdout
        held = wait_fleet(cli, first_done(apartments))
        assert held["state"] == "progressing" and held["batches"] == [[a] for a in apartments]

        shown = cli("fleet", "get", FLEET)
        assert shown.exit_code == 0
        assert "header@2.0.0 → header of each apartment" in shown.stdout and "1/2" in shown.stdout
        assert apartments[0] in shown.stdout and "succeeded" in shown.stdout and "pending" in shown.stdout

        paused = cli("fleet", "pause", "header/header", "-r", "dashboards", "--actor", "bob")
        assert paused.exit_code == 0, paused.output
        assert "paused by bob: dashboards" in paused.stdout
        refused(cli("fleet", "pause", "header/header"), "already paused")
        resumed = cli.json("fleet", "resume", "header/header", "--actor", "bob")
        assert resumed["state"] == "progressing" and resumed["paused_reason"] is None
        # Without this the second batch would wait ten minutes.
        promoted = cli.json("fleet", "promote", FLEET, "--actor", "carol", "-r", "looks good")
        assert promoted["apartments"][apartments[1]]["state"] in {"pending", "running"}
        watched = cli("fleet", "watch", "header/header", "--interval", "0.5", "--timeout", "120")
    assert watched.exit_code == 0, watched.output
    out = watched.stdout
    assert "start by alice" in out and "pause by bob" in out and "promote by carol" in out
    assert "succeeded: header@2.0.0 in 2 of 2 apartments" in out
    for apartment in apartments:
        assert await active_unit(api, apartment) == "header@2.0.0"
    refused(cli("fleet", "pause", FLEET), "ended (succeeded)")


async def test_fleet_rollback_restores_done_apartments_and_watch_exits_3(
    cli: Cli, api: httpx.AsyncClient, rum: RumTarget, settings: Settings, tmp_path: Path
) -> None:
    apartments = [await create_apartment(api) for _ in range(2)]
    bundle = make_bundle(tmp_path / "dist", "2.0.0")
    with healthy_traffic(rum, settings, apartments, "2.0.0"):
        started = cli.json(*start_args(apartments, bundle, "--batch-size", "1", "--batch-pause", "600"))
        assert started["id"] == FLEET
        wait_fleet(cli, first_done(apartments))
        assert await active_unit(api, apartments[0]) == "header@2.0.0"
        rolled = cli("fleet", "rollback", "header/header", "-r", "pager", "--actor", "dave")
        assert rolled.exit_code == 0, rolled.output
        watched = cli("fleet", "watch", FLEET, "--interval", "0.5", "--timeout", "120")
    assert watched.exit_code == 3, watched.output
    assert "rolled_back" in watched.stderr
    for apartment in apartments:
        assert await active_unit(api, apartment) == "header@1.0.0"
    final = cli.json("fleet", "get", FLEET)
    assert final["apartments"][apartments[1]]["state"] == "skipped"


async def test_fleet_start_names_what_is_missing(cli: Cli) -> None:
    result = cli("fleet", "start", "-b", "header")
    assert result.exit_code == 2
    assert "--unit" in result.output and "--version" in result.output and "--bundle-dir" in result.output
    unknown = cli("fleet", "get", "fleet.nope.nope")
    refused(unknown, "no fleet rollout 'fleet.nope.nope'")
