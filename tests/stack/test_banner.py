"""The startup banner (`python -m stack run`): every URL it prints answers 200.

Printed for the session's stack (every component, on ephemeral ports), then fetched as a
browser would (redirects followed); the S3 API answers signed requests only
(stack/s3auth.py), so it is asked with the stack's own key pair, as the CLI and SDKs do."""

from __future__ import annotations

import re
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
