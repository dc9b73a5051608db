"""Bundle publishing against the real S3 API and the Varnish edge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.bundles import sri_sha384
from activities.publish import PublishActivities, PublishBundleInput, VerifyBundleInput
from skyline.rollout import BundleSource
from skyline.settings import Settings
from tests.support.scenario import make_bundle, unique


def publisher(settings: Settings, s3: Any) -> PublishActivities:
    return PublishActivities(settings, s3, httpx.Client(timeout=10))


def test_publish_is_content_addressed_and_idempotent(settings: Settings, s3: Any, tmp_path: Path) -> None:
    unit_id = unique("unit")
    bundle = make_bundle(tmp_path / "b", "1.0.0", files=20)
    inp = PublishBundleInput(
        unit_id=unit_id, version="1.0.0", entry="index.js", source=BundleSource(path=str(bundle))
    )
    first = publisher(settings, s3).publish(inp)
    assert first.files == 23 and first.uploaded == 23 and first.skipped == 0
    assert first.integrity == sri_sha384((bundle / "index.js").read_bytes())
    assert first.prefix.startswith(f"bundles/{unit_id}/")

    head = s3.head_object(Bucket=settings.s3_bucket, Key=first.prefix + "index.js")
    assert head["CacheControl"] == "public, max-age=31536000, immutable"
    assert head["ContentType"] == "text/javascript; charset=utf-8"
    css = s3.head_object(Bucket=settings.s3_bucket, Key=first.prefix + "style.css")
    assert css["ContentType"].startswith("text/css")

    again = publisher(settings, s3).publish(inp)
    assert again.prefix == first.prefix and again.uploaded == 0 and again.skipped == 23

    # a changed file is a new content address
    (bundle / "index.js").write_text("export const changed = true;\n")
    changed = publisher(settings, s3).publish(inp)
    assert changed.prefix != first.prefix and changed.uploaded == 23


def test_edge_verification_checks_sri(settings: Settings, s3: Any, tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b", "1.0.0")
    inp = PublishBundleInput(
        unit_id=unique("unit"), version="1.0.0", entry="index.js", source=BundleSource(path=str(bundle))
    )
    pub = publisher(settings, s3)
    result = pub.publish(inp)
    ok = pub.verify_bundle_at_edge(VerifyBundleInput(entry_url=result.entry_url, integrity=result.integrity))
    assert ok.bytes == (bundle / "index.js").stat().st_size
    with pytest.raises(ApplicationError, match="checksum") as info:
        pub.verify_bundle_at_edge(VerifyBundleInput(entry_url=result.entry_url, integrity="sha384-AAAA"))
    assert info.value.non_retryable


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: None, "is not a directory"),
        (lambda root: root.mkdir(), "is empty"),
        (lambda root: (root.mkdir(), (root / "other.js").write_text("x")), "entry 'index.js' is not in"),
    ],
)
def test_bad_bundles_are_refused_with_a_reason(
    settings: Settings, s3: Any, tmp_path: Path, setup: Any, message: str
) -> None:
    root = tmp_path / "bundle"
    setup(root)
    inp = PublishBundleInput(
        unit_id="u", version="1.0.0", entry="index.js", source=BundleSource(path=str(root))
    )
    with pytest.raises(ApplicationError, match=message) as info:
        publisher(settings, s3).publish_bundle(inp)
    assert info.value.non_retryable
