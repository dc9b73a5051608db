"""The GitHub Actions examples (examples/github-actions/release.yml and pipeline.yml, docs/ci.md):
their Skyline steps,
run as a runner runs them (`bash -eo pipefail`, `$GITHUB_OUTPUT`, `${{ }}` expressions resolved
before the shell sees them) against the live stack with a real token, a bundle built by esbuild
from npm, and the job's result read from the step's exit status."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from stack.processes import free_port
from tests.browser.bundler import build, ensure_esbuild
from tests.cli.conftest import ADMIN_TOKEN
from tests.support.scenario import create_apartment, wait_state

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "github-actions"
EXPRESSION = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


@dataclass
class Step:
    returncode: int
    stdout: str
    stderr: str


class Job:
    """An example's job (`rollout` of release.yml by default): its env, its steps by id, and the
    outputs steps wrote."""

    def __init__(
        self, workdir: Path, context: dict[str, str], workflow: str = "release.yml", job: str = "rollout"
    ) -> None:
        spec = yaml.safe_load((EXAMPLE / workflow).read_text())
        self.job: dict[str, Any] = spec["jobs"][job]
        self.steps = {s["id"]: s for s in self.job["steps"] if "id" in s}
        self.workdir = workdir
        self.context = context
        self.outputs: dict[str, dict[str, str]] = {}

    def _resolve(self, text: str) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("steps."):
                _, step, _, key = name.split(".")
                return self.outputs.get(step, {}).get(key, "")
            return self.context[name]

        return EXPRESSION.sub(value, text)

    def start(self, step_id: str, **overrides: str) -> subprocess.Popen[str]:
        step = self.steps[step_id]
        output = self.workdir / f"output-{step_id}"
        output.write_text("")
        env = {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(self.workdir),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_ACTOR": "release-bot",
        }
        for source in (self.job.get("env", {}), step.get("env", {})):
            env.update({k: self._resolve(str(v)) for k, v in source.items()})
        env.update(overrides)
        script = self.workdir / f"{step_id}.sh"
        script.write_text(step["run"])
        # GitHub's default shell for `run:` on Linux
        return subprocess.Popen(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=self.workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(self, step_id: str, process: subprocess.Popen[str], timeout: float = 300) -> Step:
        stdout, stderr = process.communicate(timeout=timeout)
        lines = (self.workdir / f"output-{step_id}").read_text().splitlines()
        self.outputs[step_id] = dict(line.split("=", 1) for line in lines if "=" in line)
        return Step(process.returncode, stdout, stderr)

    async def run(self, step_id: str, **overrides: str) -> Step:
        process = self.start(step_id, **overrides)
        return await asyncio.to_thread(self.finish, step_id, process)


def unit_repository(workdir: Path, apartment: str, strategy: dict[str, Any]) -> None:
    """What the job checks out and `npm run build` makes: a unit with a lazy chunk and
    extracted CSS, built by esbuild from npm, and the repository's rollout.json."""
    built_unit(workdir)
    spec = json.loads((EXAMPLE / "rollout.json").read_text())
    spec.update(apartment=apartment, strategy=strategy)
    (workdir / "rollout.json").write_text(json.dumps(spec))


def built_unit(workdir: Path) -> None:
    """The unit's source and its dist/ as `npm run build` leaves it (esbuild from npm)."""
    src = workdir / "src"
    src.mkdir()
    (src / "style.css").write_text("header { background: rgb(10, 20, 200); }\n")
    (src / "menu.js").write_text("export const items = ['home', 'cart'];\n")
    (src / "index.js").write_text(
        'import "./style.css";\n'
        "export async function mount(el) {\n"
        '  const { items } = await import("./menu.js");\n'
        "  el.textContent = items.join(' ');\n"
        "}\n"
    )
    build(ensure_esbuild(), src, "index.js", workdir / "dist")


# No traffic reaches this stack's apartment: checks that only measure, and no minimum of loads.
OBSERVE = {
    "min_requests": 0,
    "first_unit_needs_confirmation": False,
    "checks": [{"name": "observe", "query": "vector(0)", "max": 1, "dry_run": True}],
}


async def test_a_tag_builds_rolls_out_and_passes_the_job_when_promoted(
    api: httpx.AsyncClient, secured_url: str, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    strategy = {
        "kind": "canary",
        "steps": [50, 100],
        "bake_seconds": 1,
        "analysis_interval_seconds": 1,
        **OBSERVE,
    }
    unit_repository(tmp_path, apartment, strategy)
    context = {
        "vars.SKYLINE_API_URL": secured_url,
        "secrets.SKYLINE_DEPLOYER_TOKEN": ADMIN_TOKEN,
        "github.ref_name": "v1.4.0",
    }
    job = Job(tmp_path, context)

    started = await job.run("start")
    assert started.returncode == 0, started.stderr
    rollout_id = job.outputs["start"]["id"]
    assert rollout_id == f"rollout.{apartment}.header"
    assert f"::notice::started {rollout_id} (v1.4.0)" in started.stdout

    waited = await job.run("wait")
    assert waited.returncode == 0, (waited.stdout, waited.stderr)
    assert f"::notice::{rollout_id} promoted" in waited.stdout
    final = json.loads((tmp_path / "final.json").read_text())
    assert final["state"] == "succeeded" and final["version"] == "1.4.0"

    status = (await api.get(f"/rollouts/{rollout_id}")).json()
    assert status["history"][0]["actor"] == "cli-admin"  # the token's name, not what the job claims
    assert status["history"][0]["reason"] == "release v1.4.0"
    manifest = (await api.get(f"/apartments/{apartment}/manifest")).json()
    header = manifest["apartments"][apartment]["buildings"]["header"]
    assert header["active_unit"] == "header@1.4.0"
    files = header["units"]["header@1.4.0"]["files"]
    assert any(name.endswith(".css") for name in files), files  # the built stylesheet shipped


async def test_a_rolled_back_rollout_fails_the_job_and_an_unreachable_api_too(
    api: httpx.AsyncClient, secured_url: str, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    strategy = {"kind": "canary", "steps": [50, 100], "bake_seconds": 600, **OBSERVE}
    unit_repository(tmp_path, apartment, strategy)
    context = {
        "vars.SKYLINE_API_URL": secured_url,
        "secrets.SKYLINE_DEPLOYER_TOKEN": ADMIN_TOKEN,
        "github.ref_name": "v2.0.0",
    }
    job = Job(tmp_path, context)
    assert (await job.run("start")).returncode == 0
    rollout_id = job.outputs["start"]["id"]
    await wait_state(api, rollout_id, {"progressing"})

    waiting = job.start("wait")
    rolled = await api.post(
        f"/rollouts/{rollout_id}/rollback", json={"actor": "oncall", "reason": "checkout errors"}
    )
    assert rolled.status_code in (200, 202), rolled.text
    waited = await asyncio.to_thread(job.finish, "wait", waiting)
    assert waited.returncode == 1, (waited.stdout, waited.stderr)
    assert f"::error::{rollout_id} was rolled back or failed" in waited.stdout
    assert json.loads((tmp_path / "final.json").read_text())["state"] == "rolled_back"

    closed = f"http://127.0.0.1:{free_port()}"
    unreachable = await job.run("wait", SKYLINE_API_URL=closed)
    assert unreachable.returncode == 1
    assert "::error::the Skyline API could not be reached" in unreachable.stdout


async def test_a_tag_runs_the_release_pipeline_and_its_starter_may_not_approve(
    api: httpx.AsyncClient, secured_url: str, tmp_path: Path
) -> None:
    """pipeline.yml's one step: `skyline pipeline start --spec release.json --wait` with the bundle
    built in the job, through staging and an approval into production as a fleet, auth on."""
    staging, *production = [await create_apartment(api) for _ in range(3)]
    built_unit(tmp_path)
    spec = json.loads((EXAMPLE / "release.json").read_text())
    fast = {"kind": "canary", "steps": [100], "bake_seconds": 1, "analysis_interval_seconds": 1, **OBSERVE}
    spec["strategy"] = fast
    spec["stages"][0].update(apartments=[staging], strategy=fast, soak_seconds=1, verify=[])
    spec["stages"][1].update(apartments=production)
    (tmp_path / "release.json").write_text(json.dumps(spec))
    context = {
        "vars.SKYLINE_API_URL": secured_url,
        "secrets.SKYLINE_DEPLOYER_TOKEN": ADMIN_TOKEN,
        "github.ref_name": "v3.0.0",
    }
    job = Job(tmp_path, context, "pipeline.yml", "pipeline")
    pipeline_id = "pipeline.header.header"

    running = job.start("release")
    try:
        deadline = time.monotonic() + 180
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            assert running.poll() is None, running.communicate()
            got = await api.get(f"/pipelines/{pipeline_id}")
            status = got.json() if got.status_code == 200 else {}
            if status.get("version") == "3.0.0" and status["stages"][0]["state"] == "awaiting_approval":
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"never awaited the approval: {status}")
        assert status["started_by"] == "cli-admin"  # the token's name, not what the job claims
        async with httpx.AsyncClient(base_url=secured_url, timeout=30) as secured:
            admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
            # the stage says not_starter: the token that started the pipeline may not approve it
            own = await secured.post(
                f"/pipelines/{pipeline_id}/approve", json={"reason": "mine"}, headers=admin
            )
            assert own.status_code == 409, own.text
            assert "started this pipeline" in own.json()["error"]["message"]
            name = f"approver-{staging}"
            minted = await secured.post("/tokens", json={"name": name, "role": "deployer"}, headers=admin)
            assert minted.status_code == 201, minted.text
            approver = {"authorization": f"Bearer {minted.json()['token']}"}
            approved = await secured.post(
                f"/pipelines/{pipeline_id}/approve", json={"reason": "staging looks right"}, headers=approver
            )
            assert approved.status_code == 200, approved.text
        done = await asyncio.to_thread(job.finish, "release", running)
    finally:
        if running.poll() is None:
            running.kill()
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert f"::notice::{pipeline_id}: v3.0.0 reached every stage" in done.stdout
    assert job.outputs["release"]["id"] == pipeline_id
    final = json.loads((tmp_path / "final.json").read_text())
    assert final["state"] == "succeeded" and final["version"] == "3.0.0"
    assert [s["state"] for s in final["stages"]] == ["succeeded", "succeeded"]
    assert [a["actor"] for a in final["stages"][0]["approvals"]] == [name]
    for apartment in (staging, *production):
        manifest = (await api.get(f"/apartments/{apartment}/manifest")).json()
        assert manifest["apartments"][apartment]["buildings"]["header"]["active_unit"] == "header@3.0.0"
