"""ensure_system_packages: nothing to do, install as root, exact advice otherwise."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from stack import system_packages
from stack.system_packages import SystemPackagesError, ensure_system_packages


def _never(argv: Sequence[str], env: dict[str, str]) -> None:
    raise AssertionError(f"unexpected command {argv}")


def test_installed_binaries_are_found_without_running_anything() -> None:
    paths = ensure_system_packages(runner=_never)
    assert Path(paths["varnishd"]).name == "varnishd"
    assert Path(paths["prometheus"]).name == "prometheus"


def test_non_root_gets_the_exact_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system_packages, "find_binary", lambda name: None)
    with pytest.raises(SystemPackagesError) as failure:
        ensure_system_packages(is_root=False, runner=_never)
    assert "sudo apt-get install -y prometheus redis-server varnish" in str(failure.value)


def test_root_installs_missing_packages_without_starting_services(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    installed: set[str] = set()
    policy = tmp_path / "policy-rc.d"
    monkeypatch.setattr(system_packages, "POLICY_RC_D", policy)
    monkeypatch.setattr(system_packages, "_apt_updated", False)
    monkeypatch.setattr(
        system_packages,
        "find_binary",
        lambda name: (
            f"/usr/sbin/{name}" if name in installed or name in ("prometheus", "redis-server") else None
        ),
    )
    commands: list[list[str]] = []

    def apt(argv: Sequence[str], env: dict[str, str]) -> None:
        commands.append(list(argv))
        assert env["DEBIAN_FRONTEND"] == "noninteractive"
        assert "exit 101" in policy.read_text()
        if argv[:2] == ["apt-get", "install"]:
            installed.add("varnishd")

    paths = ensure_system_packages(is_root=True, runner=apt)

    assert commands == [
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", "varnish"],
    ]
    assert paths == {
        "varnishd": "/usr/sbin/varnishd",
        "prometheus": "/usr/sbin/prometheus",
        "redis-server": "/usr/sbin/redis-server",
    }
    assert not policy.exists()


def test_the_ingest_benchmark_asks_for_debians_wrk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system_packages, "find_binary", lambda name: None)
    with pytest.raises(SystemPackagesError) as failure:
        system_packages.ensure_bench(is_root=False, runner=_never)
    assert "sudo apt-get install -y wrk" in str(failure.value)
