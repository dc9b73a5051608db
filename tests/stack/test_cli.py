"""`python -m stack`: foreground run, clean shutdown on SIGINT/SIGTERM, check."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from stack.processes import wait_until
from tests.stack.helpers import children_of, process_exists

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("signum", "when"),
    [
        (signal.SIGTERM, "Skyline stack is up"),
        (signal.SIGINT, "Skyline stack is up"),
        (signal.SIGTERM, "starting edge"),  # interrupted half-way through start()
    ],
)
def test_run_stops_everything_it_started_on_signal(tmp_path: Path, signum: signal.Signals, when: str) -> None:
    out = tmp_path / "launcher.out"
    with out.open("wb") as sink:
        launcher = subprocess.Popen(
            [
                sys.executable, "-m", "stack", "run",
                "--state-dir", str(tmp_path / "state"),
                "--ephemeral-ports", "--components", "s3,edge",
            ],
            cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_until(lambda: when in out.read_text() or launcher.poll() is not None, 30.0, "launcher")
        assert launcher.poll() is None, out.read_text()
        children = children_of(launcher.pid)
        assert children

        launcher.send_signal(signum)
        assert launcher.wait(timeout=30) == 0, out.read_text()
        assert [pid for pid in children if process_exists(pid)] == []
        text = out.read_text()
        assert "stopping s3" in text
        assert "Traceback" not in text
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()


def test_check_reports_the_system_binaries() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stack", "check"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "varnishd: " in result.stdout
    assert "prometheus: " in result.stdout


def test_run_restarts_a_killed_storage_server_and_prints_the_cli_path(tmp_path: Path) -> None:
    out = tmp_path / "launcher.out"
    with out.open("wb") as sink:
        launcher = subprocess.Popen(
            [
                sys.executable, "-m", "stack", "run",
                "--state-dir", str(tmp_path / "state"),
                "--ephemeral-ports", "--components", "s3",
            ],
            cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        up = "Skyline stack is up"
        wait_until(lambda: up in out.read_text() or launcher.poll() is not None, 30.0, "up")
        text = out.read_text()
        assert "Storage" in text and str(tmp_path / "state" / "storage") in text
        assert "CLI" in text and "skyline" in text
        [s3] = children_of(launcher.pid)
        os.kill(s3, signal.SIGKILL)
        wait_until(lambda: "s3 is ready again" in out.read_text(), 30.0, "restart")
        assert launcher.poll() is None, out.read_text()
        [again] = children_of(launcher.pid)
        assert again != s3
        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(timeout=30) == 0, out.read_text()
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()


def test_scrape_interval_accepts_seconds_and_refuses_nonsense_clearly(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from stack.__main__ import _parse as parse_args

    assert parse_args(["run", "--scrape-interval", "1"]).scrape_interval == "1s"
    assert parse_args(["run", "--scrape-interval", "0.5"]).scrape_interval == "500ms"
    assert parse_args(["run", "--scrape-interval", "15s"]).scrape_interval == "15s"
    with pytest.raises(SystemExit) as exited:
        parse_args(["run", "--scrape-interval", "fast"])
    assert exited.value.code == 2
    assert "'fast' is not a scrape interval: give seconds (1, 0.5)" in capsys.readouterr().err
