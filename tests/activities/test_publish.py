"""Bundle publishing against the real S3 API and the Varnish edge."""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.publish import PublishActivities, PublishBundleInput, VerifyBundleInput
from adapters.bundles import sri_sha384
from adapters.storage import upload_key
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
    assert first.prefix == f"bundles/{unit_id}/" and first.layout == "shared"
    entry_key = first.keys["index.js"]
    assert first.entry_url.endswith("/" + entry_key)
    assert re.fullmatch(rf"bundles/{unit_id}/index\.[0-9a-f]{{16}}\.js", entry_key)
    assert first.keys["chunks/chunk-3.js"] == f"bundles/{unit_id}/chunks/chunk-3.js"
    # every published file's SRI is recorded
    assert first.file_integrity == {
        rel: sri_sha384(s3.get_object(Bucket=settings.s3_bucket, Key=key)["Body"].read())
        for rel, key in first.keys.items()
    }

    head = s3.head_object(Bucket=settings.s3_bucket, Key=entry_key)
    assert head["CacheControl"] == "public, max-age=31536000, immutable"
    assert head["ContentType"] == "text/javascript; charset=utf-8"
    css = s3.head_object(Bucket=settings.s3_bucket, Key=first.keys["style.css"])
    assert css["ContentType"].startswith("text/css")

    again = publisher(settings, s3).publish(inp)
    assert again.keys == first.keys and again.uploaded == 0 and again.skipped == 23

    # a changed entry is a new address; the files it did not change keep theirs
    (bundle / "index.js").write_text("export const changed = true;\n")
    changed = publisher(settings, s3).publish(inp)
    assert changed.layout == "shared" and changed.uploaded == 1 and changed.uploaded_bytes == 29
    assert changed.keys["index.js"] != entry_key and changed.entry_url != first.entry_url
    assert {k: v for k, v in changed.keys.items() if k != "index.js"} == {
        k: v for k, v in first.keys.items() if k != "index.js"
    }
    # the first version is still served as it was (keys are never overwritten)
    old = s3.get_object(Bucket=settings.s3_bucket, Key=entry_key)["Body"].read()
    assert sri_sha384(old) == first.integrity

    # an unhashed name whose bytes changed cannot share: the bundle is published apart
    (bundle / "chunks" / "chunk-0.js").write_text("export const n0 = 'other';\n")
    apart = publisher(settings, s3).publish(inp)
    assert apart.layout == "versioned" and apart.uploaded == 23
    assert apart.prefix.startswith(f"bundles/{unit_id}/") and apart.prefix != first.prefix
    assert apart.keys["chunks/chunk-0.js"] == apart.prefix + "chunks/chunk-0.js"
    assert s3.get_object(Bucket=settings.s3_bucket, Key=first.keys["chunks/chunk-0.js"])["Body"].read() == (
        b"export const n0 = 0; // 1.0.0\n"
    )


def test_a_same_size_impostor_at_a_content_address_is_written_over(
    settings: Settings, s3: Any, tmp_path: Path
) -> None:
    """A name derived from content promises those bytes: other bytes of the same size found
    there (tampered storage) are not trusted by size, and are replaced, in both layouts."""
    unit_id = unique("unit")
    bundle = make_bundle(tmp_path / "b", "1.0.0", files=3)
    inp = PublishBundleInput(
        unit_id=unit_id, version="1.0.0", entry="index.js", source=BundleSource(path=str(bundle))
    )
    pub = publisher(settings, s3)

    def impostor(key: str) -> bytes:
        body: bytes = s3.get_object(Bucket=settings.s3_bucket, Key=key)["Body"].read()
        forged = b"x" * len(body)  # same size, other bytes
        s3.put_object(Bucket=settings.s3_bucket, Key=key, Body=forged)
        return body

    shared = pub.publish(inp)
    assert shared.layout == "shared"
    entry = shared.keys["index.js"]  # a tagged, content-derived name
    genuine = impostor(entry)
    again = pub.publish(inp)
    assert again.keys == shared.keys and again.uploaded_keys == [entry]
    assert s3.get_object(Bucket=settings.s3_bucket, Key=entry)["Body"].read() == genuine

    (bundle / "chunks" / "chunk-0.js").write_text("export const n0 = 'other';\n")
    versioned = pub.publish(inp)
    assert versioned.layout == "versioned"
    chunk = versioned.keys["chunks/chunk-1.js"]
    genuine = impostor(chunk)
    again = pub.publish(inp)
    assert again.prefix == versioned.prefix and again.uploaded_keys == [chunk]
    assert s3.get_object(Bucket=settings.s3_bucket, Key=chunk)["Body"].read() == genuine
    assert pub.publish(inp).uploaded == 0  # mended: nothing left to send


def _esbuild_like(root: Path, lazy: str, entry_extra: str = "") -> Path:
    """esbuild --splitting --sourcemap output: hashed chunks, an unhashed entry and its siblings."""
    root.mkdir(parents=True, exist_ok=True)
    lazy_name = "chunk-" + hashlib.sha256(lazy.encode()).hexdigest()[:8].upper() + ".js"
    (root / "chunk-VENDOR01.js").write_text(
        "export const h = () => 1;\n//# sourceMappingURL=chunk-VENDOR01.js.map\n"
    )
    (root / "chunk-VENDOR01.js.map").write_text('{"version":3,"sources":["preact"],"mappings":"AAAA"}')
    (root / lazy_name).write_text(f"export const lazy = {lazy!r};\n")
    (root / "index.js").write_text(
        f'import {{ h }} from "./chunk-VENDOR01.js";\n'
        f'export async function mount(el) {{ const m = await import("./{lazy_name}"); }}\n'
        f"{entry_extra}//# sourceMappingURL=index.js.map\n"
    )
    (root / "index.js.map").write_text('{"version":3,"sources":["index.tsx"],"mappings":"AACA"}')
    (root / "index.css").write_text(".unit { color: rebeccapurple; }\n")
    return root


def test_a_second_version_uploads_only_what_changed(settings: Settings, s3: Any, tmp_path: Path) -> None:
    unit_id = unique("unit")
    first_dir = _esbuild_like(tmp_path / "v1", "one")
    second_dir = _esbuild_like(tmp_path / "v2", "two")
    pub = publisher(settings, s3)

    def publish(root: Path, version: str) -> Any:
        return pub.publish(
            PublishBundleInput(
                unit_id=unit_id, version=version, entry="index.js", source=BundleSource(path=str(root))
            )
        )

    first, second = publish(first_dir, "1.0.0"), publish(second_dir, "1.1.0")
    assert first.layout == second.layout == "shared"
    assert first.uploaded == 6
    # the lazy chunk (new hashed name) and the entry that imports it; the entry's map is unchanged
    lazy = next(r for r in second.keys if r.startswith("chunk-") and "VENDOR" not in r)
    moved = sorted(rel for rel in second.keys if second.keys[rel] != first.keys.get(rel))
    assert moved == sorted([lazy, "index.js"])
    assert second.uploaded == 2
    # unchanged vendor chunk, its map and the stylesheet: same keys, so the same URLs for browsers
    for rel in ("chunk-VENDOR01.js", "chunk-VENDOR01.js.map", "index.css", "index.js.map"):
        assert second.keys[rel] == first.keys[rel]
    # the entry's relative imports resolve in the shared directory, where the chunks are
    entry = s3.get_object(Bucket=settings.s3_bucket, Key=second.keys["index.js"])["Body"].read().decode()
    base = second.keys["index.js"].rsplit("/", 1)[0]
    for spec in re.findall(r'"\./([^"]+)"', entry):
        assert f"{base}/{spec}" in second.keys.values(), spec
    # its source map comment names the renamed map
    assert entry.rstrip().endswith("sourceMappingURL=" + second.keys["index.js.map"].rsplit("/", 1)[1])
    assert second.integrity == sri_sha384(entry.encode()) == second.file_integrity["index.js"]


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


def _mf_remote(root: Path, version: str, *, entry_path: str = "", mf: dict[str, Any] | None = None) -> Path:
    """A Module Federation 2 remote's output: mf-manifest.json, its container entry, an expose chunk."""
    where = root / entry_path if entry_path else root
    where.mkdir(parents=True, exist_ok=True)
    (where / "remoteEntry.js").write_text(
        f'export const version = "{version}";\n'
        "export async function init() {}\n"
        "export async function get(expose) {\n"
        '  const m = await import("./__federation_expose_Cart-A1B2C3D4.js");\n'
        "  return () => m;\n}\n"
    )
    (where / "__federation_expose_Cart-A1B2C3D4.js").write_text("export default 'cart';\n")
    doc = mf or {
        "id": "checkout",
        "name": "checkout",
        "metaData": {
            "name": "checkout",
            "buildInfo": {"buildVersion": version, "buildName": "checkout"},
            "remoteEntry": {"name": "remoteEntry.js", "path": entry_path, "type": "module"},
            "globalName": "checkout",
            "publicPath": "auto",
        },
        "shared": [],
        "remotes": [],
        "exposes": [{"id": "checkout:Cart", "name": "Cart", "path": "./Cart"}],
    }
    (root / "mf-manifest.json").write_text(json.dumps(doc))
    return root


def test_a_module_federation_remote_publishes_its_container_entry(
    settings: Settings, s3: Any, tmp_path: Path
) -> None:
    unit_id = unique("remote")
    root = _mf_remote(tmp_path / "v1", "1.0.0", entry_path="static/js")
    # `entry` left at its default: mf-manifest.json names the entry
    inp = PublishBundleInput(
        unit_id=unit_id, version="1.0.0", entry="index.js", source=BundleSource(path=str(root))
    )
    result = publisher(settings, s3).publish(inp)
    assert result.entry == "static/js/remoteEntry.js" and result.layout == "shared"
    assert result.federation is not None
    assert (result.federation.name, result.federation.type, result.federation.exposes) == (
        "checkout",
        "module",
        ["./Cart"],
    )
    assert re.fullmatch(
        rf"bundles/{unit_id}/static/js/remoteEntry\.[0-9a-f]{{16}}\.js", result.entry_key or ""
    )
    assert result.integrity == sri_sha384((root / "static/js/remoteEntry.js").read_bytes())
    # the expose chunk sits next to the renamed entry, where its relative import resolves
    assert result.keys["static/js/__federation_expose_Cart-A1B2C3D4.js"] == (
        f"bundles/{unit_id}/static/js/__federation_expose_Cart-A1B2C3D4.js"
    )
    # the build's metadata changes with every build: tagged by content, never a shared key
    assert re.fullmatch(
        rf"bundles/{unit_id}/mf-manifest\.[0-9a-f]{{16}}\.json", result.keys["mf-manifest.json"]
    )
    # the same entry named explicitly is fine; another one contradicts the manifest
    named = inp.model_copy(update={"entry": "static/js/remoteEntry.js"})
    assert publisher(settings, s3).publish(named).entry_key == result.entry_key
    with pytest.raises(ApplicationError, match="contradicts mf-manifest.json") as info:
        publisher(settings, s3).publish_bundle(inp.model_copy(update={"entry": "other.js"}))
    assert info.value.non_retryable

    # an archive with one top folder is found by its mf-manifest.json
    archive = tmp_path / "remote.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(_mf_remote(tmp_path / "v2", "1.1.0"), arcname="dist")
    upload = hashlib.sha256(unique("up").encode()).hexdigest()[:32]
    s3.put_object(Bucket=settings.s3_bucket, Key=upload_key(upload), Body=archive.read_bytes())
    uploaded = publisher(settings, s3).publish(
        PublishBundleInput(
            unit_id=unit_id, version="1.1.0", entry="index.js", source=BundleSource(upload_id=upload)
        )
    )
    assert uploaded.entry == "remoteEntry.js" and uploaded.federation is not None
    assert (
        uploaded.layout == "shared" and uploaded.keys["mf-manifest.json"] != result.keys["mf-manifest.json"]
    )


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: (root / "mf-manifest.json").write_text("{"), "mf-manifest.json is not JSON"),
        (
            lambda root: (root / "mf-manifest.json").write_text(
                json.dumps({"name": "x", "metaData": {"remoteEntry": {"name": "gone.js", "path": ""}}})
            ),
            "'gone.js', which is not in the bundle",
        ),
        (
            lambda root: (root / "mf-manifest.json").write_text(
                json.dumps(
                    {"name": "x", "metaData": {"remoteEntry": {"name": "remoteEntry.js", "path": ".."}}}
                )
            ),
            "inside the bundle",
        ),
        (
            lambda root: (
                (root / "remoteEntry.js").unlink(),
                (root / "remoteEntry.js").symlink_to(root / "index.js"),
            ),
            "goes through a symlink",
        ),
    ],
)
def test_bad_mf_manifests_are_refused_with_a_reason(
    settings: Settings, s3: Any, tmp_path: Path, setup: Any, message: str
) -> None:
    root = _mf_remote(tmp_path / "bundle", "1.0.0")
    (root / "index.js").write_text("export const x = 1;\n")
    setup(root)
    inp = PublishBundleInput(
        unit_id="u", version="1.0.0", entry="index.js", source=BundleSource(path=str(root))
    )
    with pytest.raises(ApplicationError, match=re.escape(message)) as info:
        publisher(settings, s3).publish_bundle(inp)
    assert info.value.non_retryable and info.value.type == "InvalidBundle"
