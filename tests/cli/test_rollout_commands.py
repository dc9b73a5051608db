"""`skyline rollout …` against the live API: start, watch to the end, steer, and the exit codes."""

from __future__ import annotations

import asyncio
import json
import sys
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from skyline.settings import Settings
from stack.processes import free_port
from tests.cli.conftest import Cli, refused
from tests.support.rum import RumTarget
from tests.support.scenario import create_apartment, make_bundle, wait_state

pytestmark = pytest.mark.asyncio(loop_scope="session")

FAST = ["--interval", "1", "--window", "10", "--min-requests", "5", "--no-confirm-first-unit"]


def start_args(apartment: str, version: str, *extra: str) -> list[str]:
    return ["rollout", "start", "-a", apartment, "-b", "header", "-u", "header", "-V", version, *extra]


def listed(cli: Cli, *filters: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = cli.json("rollout", "list", *filters)
    return rows


def wait_listed(cli: Cli, rollout_id: str, state: str, *filters: str) -> list[dict[str, Any]]:
    """Visibility is eventually consistent: poll the list until it shows the state."""
    deadline = time.monotonic() + 30
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = listed(cli, *filters)
        if any(r["id"] == rollout_id and r["state"] == state for r in rows):
            return rows
        time.sleep(0.3)
    raise AssertionError(f"{rollout_id} never listed as {state}: {rows}")


async def test_start_and_watch_follow_a_fast_canary_to_success(
    cli: Cli, api: httpx.AsyncClient, rum: RumTarget, settings: Settings, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    bundle = make_bundle(tmp_path / "dist", "1.1.0")
    rollout_id = f"rollout.{apartment}.header"
    with rum.traffic(apartment, "header", "header", "1.1.0"):
        rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "1.1.0")
        started = cli(
            *start_args(apartment, "1.1.0", "--bundle-dir", str(bundle), "--steps", "100", "--bake", "1"),
            *FAST,
            *("--reason", "new nav", "--actor", "alice"),
        )
        assert started.exit_code == 0, started.output
        assert rollout_id in started.stdout and "publishing" in started.stdout
        watched = cli("rollout", "watch", f"{apartment}/header", "--interval", "0.5", "--timeout", "120")
    assert watched.exit_code == 0, watched.output
    out = watched.stdout
    # the event log, then the final frame of the live view: full weight, the passing analysis
    assert "start by alice" in out and "new nav" in out
    assert "set weight by skyline" in out and "promoted by skyline" in out
    assert "100%" in out and "step 1/1" in out
    assert "error_rate" in out and "pass" in out
    assert f"succeeded: header@1.1.0 → {apartment}/header" in out

    # -o is global but may come last, as in kubectl
    trailing = cli("rollout", "get", rollout_id, "-o", "json")
    assert trailing.exit_code == 0
    status = json.loads(trailing.stdout)
    assert status["state"] == "succeeded" and status["weight"] == 100
    assert status["last_analysis"]["verdict"] == "pass"
    shown = cli("rollout", "get", rollout_id)
    assert shown.exit_code == 0 and "header@1.1.0" in shown.stdout and "succeeded" in shown.stdout

    # watching a rollout that already ended answers at once, with its status as JSON
    final = cli.json("rollout", "watch", rollout_id)
    assert final["rollout_id"] == rollout_id and final["state"] == "succeeded"

    trail = cli.json("rollout", "audit", rollout_id)
    assert trail[0]["action"] == "start" and trail[0]["actor"] == "alice"
    assert "promoted" in [e["action"] for e in trail]
    table = cli("rollout", "audit", rollout_id)
    assert table.exit_code == 0 and "alice" in table.stdout and "new nav" in table.stdout
    # piped at 80 columns: a header and one tab-separated record per entry, none folded
    cli.env["COLUMNS"] = "80"
    piped = cli("rollout", "audit", rollout_id)
    lines = piped.stdout.splitlines()
    assert piped.exit_code == 0 and len(lines) == 1 + len(trail), piped.stdout
    assert lines[0].split("\t") == ["at (UTC)", "action", "actor", "state", "rev", "reason"]
    assert all(len(line.split("\t")) == 6 for line in lines)
    assert lines[1].split("\t")[1:3] == ["start", "alice"]
    cli.env["COLUMNS"] = "220"

    rows = wait_listed(cli, rollout_id, "succeeded", "--apartment", apartment)
    assert [r["id"] for r in rows] == [rollout_id]
    assert rows[0]["version"] == "1.1.0" and rows[0]["workflow_status"] == "completed"
    assert listed(cli, "-a", apartment, "--state", "paused") == []
    assert rollout_id in cli("rollout", "list", "-a", apartment, "-s", "succeeded").stdout


def tar_gz(directory: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as tar:
        tar.add(directory, arcname=".")
    return target


async def test_steering_from_the_cli_and_watch_exit_codes(
    cli: Cli, api: httpx.AsyncClient, api_url: str, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    archive = tar_gz(make_bundle(tmp_path / "dist", "1.1.0"), tmp_path / "header-1.1.0.tar.gz")
    slow = ["--steps", "5,50,100", "--bake", "600", "--interval", "60"]
    created = cli.json(*start_args(apartment, "1.1.0", "--bundle-archive", str(archive), *slow))
    rollout_id = created["id"]
    assert created["state"] == "publishing" and created["status_url"] == f"/rollouts/{rollout_id}"
    await wait_state(api, rollout_id, {"progressing"})

    # a second rollout into the same building is refused with the API's reason
    again = cli(*start_args(apartment, "1.2.0", "--bundle-archive", str(archive), *slow))
    refused(again, "409", "already has a rollout running", rollout_id)

    timed_out = cli("rollout", "watch", rollout_id, "--timeout", "1", "--interval", "0.2")
    assert timed_out.exit_code == 5, timed_out.output
    assert "still progressing" in timed_out.stderr
    # its last frame ends its line: the shell prompt (or the next output) starts on a new one
    assert timed_out.stdout.endswith("\n"), repr(timed_out.stdout[-200:])

    paused = cli("rollout", "pause", rollout_id, "--reason", "checking dashboards", "--actor", "carol")
    assert paused.exit_code == 0, paused.output
    assert "paused by carol: checking dashboards" in paused.stdout
    refused(cli("rollout", "pause", rollout_id), "already paused")
    assert cli.json("rollout", "resume", rollout_id)["state"] == "progressing"
    stepped = cli.json("rollout", "promote", rollout_id, "--reason", "looks fine")
    assert stepped["weight"] == 50 and stepped["step"] == 1

    # A real `skyline` process watches while the rollback is issued from the CLI.
    skyline = Path(sys.executable).parent / "skyline"
    watcher = await asyncio.create_subprocess_exec(
        str(skyline), "--api-url", api_url, "rollout", "watch", rollout_id, "--interval", "0.3",
        "--timeout", "90",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    try:
        assert watcher.stdout is not None
        # the event log starts with the history so far: the watcher is polling
        first = await asyncio.wait_for(watcher.stdout.readline(), 30)
        assert b"start by" in first, first
        rolled = cli("rollout", "rollback", rollout_id, "-r", "errors in checkout", "--actor", "bob")
        assert rolled.exit_code == 0, rolled.output
        assert "rolled_back" in rolled.stdout
        rest, errors = await asyncio.wait_for(watcher.communicate(), 60)
    finally:
        if watcher.returncode is None:
            watcher.kill()
            await watcher.wait()
    assert watcher.returncode == 3, (rest, errors)
    assert b"rollback by bob" in rest and b"errors in checkout" in rest
    assert b"rolled_back" in errors

    refused(cli("rollout", "resume", rollout_id), "has ended", "start a new one")
    ended = cli("--output", "json", "rollout", "watch", rollout_id)
    assert ended.exit_code == 3 and json.loads(ended.stdout)["state"] == "rolled_back"


async def test_start_from_a_spec_file_with_overrides_and_bad_input(
    cli: Cli, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    bundle = make_bundle(tmp_path / "dist", "1.5.0")
    spec = tmp_path / "rollout.json"
    body = {
        "apartment": apartment,
        "building": "header",
        "unit_id": "header",
        "version": "9.9.9",
        "bundle": {"path": "/does/not/matter"},
        "strategy": {"kind": "canary", "steps": [10, 100], "bake_seconds": 600},
    }
    spec.write_text(json.dumps(body))

    # the API's 422s: message and field on stderr, exit 1
    refused(cli("rollout", "start", "--spec", str(spec), "-V", "banana"), "SemVer", "field: version")
    refused(cli("rollout", "start", "--spec", str(spec), "-V", "0.9.0"), "field: version")
    refused(cli("rollout", "start", "--spec", str(spec)), "under SKYLINE_BUNDLE_ROOT", "field: bundle.path")
    as_json = cli("-o", "json", "rollout", "start", "--spec", str(spec), "--max-error-rate", "7")
    assert as_json.exit_code == 1
    error = json.loads(as_json.stdout)["error"]
    assert error["status"] == 422 and error["field"] == "strategy.max_error_rate"

    created = cli.json(
        "rollout", "start", "--spec", str(spec), "-V", "1.5.0", "--bundle-dir", str(bundle), "--upload",
        "--steps", "20,100", "--reason", "from a spec",
    )  # fmt: skip
    status = (await api.get(f"/rollouts/{created['id']}")).json()
    assert status["version"] == "1.5.0" and status["steps"] == [20, 100]
    assert status["history"][0]["reason"] == "from a spec"
    await wait_state(api, created["id"], {"progressing"})
    done = cli.json("rollout", "promote", created["id"], "--full")
    assert done["state"] == "succeeded", done


async def test_usage_errors_and_unreachable_api_have_their_own_exit_codes(cli: Cli, tmp_path: Path) -> None:
    missing = cli("rollout", "start", "-a", "shop", "--bundle-dir", str(tmp_path))
    assert missing.exit_code == 2 and "--building" in missing.output and "--version" in missing.output
    both = cli(*start_args("shop", "1.0.0", "--bundle-dir", str(tmp_path), "--upload-id", "abc"))
    assert both.exit_code == 2 and "one of" in both.output
    wrong_kind = cli(
        *start_args("shop", "1.0.0", "--bundle-dir", "/x", "--strategy", "linear", "--steps", "5,100")
    )
    assert wrong_kind.exit_code == 2 and "canary" in wrong_kind.output
    assert cli("rollout", "list", "--state", "sideways").exit_code == 2
    assert cli("rollout", "frobnicate").exit_code == 2

    unknown = cli("rollout", "get", "rollout.nope.nope")
    refused(unknown, "404", "no rollout 'rollout.nope.nope'")
    as_json = cli("-o", "json", "rollout", "get", "rollout.nope.nope")
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["error"]["code"] == "not_found"

    nowhere = f"http://127.0.0.1:{free_port()}"
    down = cli("--api-url", nowhere, "rollout", "list")
    assert down.exit_code == 4 and "cannot reach the API" in down.stderr and nowhere in down.stderr
    down_json = cli("--api-url", nowhere, "-o", "json", "rollout", "list")
    assert down_json.exit_code == 4 and json.loads(down_json.stdout)["error"]["code"] == "unreachable"


class FailingApi(BaseHTTPRequestHandler):
    """What a proxy in front of the API answers while the API is down."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.dumps({"error": {"status": 503, "code": "unavailable", "message": "upstream down"}})
        self.send_response(503)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


async def test_a_5xx_answer_exits_4_with_its_message(cli: Cli) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FailingApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = cli("--api-url", url, "rollout", "get", "shop/header")
        as_json = cli("--api-url", url, "-o", "json", "rollout", "list")
    finally:
        server.shutdown()
        thread.join(5)
    assert result.exit_code == 4 and "503" in result.stderr and "upstream down" in result.stderr
    assert as_json.exit_code == 4 and json.loads(as_json.stdout)["error"]["code"] == "unavailable"
