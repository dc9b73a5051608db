"""The Dockerfile: multi-stage, pinned base, non-root runtime, every package in the wheel."""

from __future__ import annotations

import re
import tomllib

from tests.deploy.compose import ROOT, load, published

DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
# One entry per instruction: comments dropped, `\`-continued lines joined.
_PLAIN = "\n".join(line for line in DOCKERFILE.splitlines() if not line.lstrip().startswith("#"))
LINES = [" ".join(line.split()) for line in _PLAIN.replace("\\\n", " ").splitlines() if line.strip()]


def instructions(keyword: str, stage: int | None = None) -> list[str]:
    """Arguments of every `keyword` instruction, optionally of one stage (0-based)."""
    found: list[str] = []
    current = -1
    for line in LINES:
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            current += 1
        if word.upper() == keyword and (stage is None or stage == current):
            found.append(rest.strip())
    return found


def test_multi_stage_with_a_pinned_base() -> None:
    stages = instructions("FROM")
    assert len(stages) >= 2, "build wheels in one stage, run from another"
    args = dict(a.split("=", 1) for a in instructions("ARG") if "=" in a)
    for stage in stages:
        image = stage.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        name, _, tag = image.partition(":")
        assert tag and tag != "latest" and re.match(r"\d+\.\d+\.\d+", tag), f"unpinned base {image}"


def test_runtime_stage_runs_as_a_non_root_user_without_build_tools() -> None:
    last = len(instructions("FROM")) - 1
    users = instructions("USER", last)
    assert users, "the runtime stage must switch to a non-root USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    runtime = "\n".join(instructions("RUN", last))
    assert "pip wheel" not in runtime and "apt-get" not in runtime and "--no-index" in runtime
    assert instructions("CMD", last) == ['["python", "-m", "worker"]']


def test_every_package_is_copied_into_the_build() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {c.split()[0] for c in instructions("COPY", 0)}
    assert packages <= copied, packages - copied


def test_the_runtime_image_carries_the_browser_loader() -> None:
    """site-packages has no loader/: the image copies it and points the setting at the copy."""
    last = len(instructions("FROM")) - 1
    env = dict(e.split("=", 1) for e in instructions("ENV", last) for e in e.split() if "=" in e)
    target = env.get("SKYLINE_LOADER_SOURCE")
    assert target, "set SKYLINE_LOADER_SOURCE in the runtime stage"
    copies = [c.split() for c in instructions("COPY", last) if not c.startswith("--")]
    assert ["loader/skyline-loader.js", target] in copies
    assert (ROOT / "loader" / "skyline-loader.js").is_file()


def test_exposed_ports_match_compose() -> None:
    exposed = {int(p) for line in instructions("EXPOSE") for p in line.split()}
    services = load()["services"]
    assert set(published(services["api"])) <= exposed
    assert {int(p) for p in services["worker"]["expose"]} <= exposed


def test_build_context_leaves_out_the_virtualenv() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".venv", ".git", ".skyline"} <= set(ignored)
