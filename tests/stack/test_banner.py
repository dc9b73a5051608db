"""The startup banner (`python -m stack run`): every URL it prints answers 200.

Printed for the session's stack (every component, on ephemeral ports), then fetched as a
browser would (redirects followed); the S3 API answers signed requests only
(stack/s3auth.py), so it is asked with the stack's own key pair, as the CLI and SDKs do."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from skyline.settings import Settings
from stack.__main__ import banner
from stack.embedded import EmbeddedStack

URL = re.compile(r"https?://[^\s)]+")


def test_every_url_the_banner_prints_answers_200(stack: EmbeddedStack, settings: Settings, s3: Any) -> None:
    text = banner(stack)
    table = [line.strip().split("  ", 1) for line in text.splitlines() if line.startswith("  ")]
    rows = {name.strip(): value.strip() for name, value in table}
    assert {"Temporal UI", "S3 API", "Edge (Varnish)", "Prometheus", "API", "Shell pages"} <= set(rows), text
    urls = URL.findall(text)
    assert rows["Shell pages"] in urls and rows["Edge (Varnish)"] in urls, text
    assert len(urls) >= 6, urls
    answers: dict[str, int] = {}
    with httpx.Client(timeout=20, follow_redirects=True) as http:
        for url in urls:
            if url == rows["S3 API"]:
                assert url == settings.s3_endpoint_url
                answers[url] = s3.list_buckets()["ResponseMetadata"]["HTTPStatusCode"]
            else:
                answers[url] = http.get(url).status_code
    assert answers == {url: 200 for url in urls}, answers


def test_make_run_passes_run_args_to_the_stack() -> None:
    """`make run RUN_ARGS=--ephemeral-ports` reaches `python -m stack run` (dry run: nothing starts)."""
    root = Path(__file__).resolve().parents[2]
    make = shutil.which("make")
    assert make is not None
    argv = [make, "-n", "run", "RUN_ARGS=--ephemeral-ports"]
    dry = subprocess.run(argv, cwd=root, capture_output=True, text=True, check=True)
    assert re.search(r"-m stack run --ephemeral-ports$", dry.stdout, re.MULTILINE), dry.stdout
    assert (
        "--ephemeral-ports"
        in subprocess.run(
            [sys.executable, "-m", "stack", "run", "--help"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
