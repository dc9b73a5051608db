"""Item 7: uploaded archives are checked while streaming; each bad kind gets a clear 422."""

from __future__ import annotations

import gzip
import io
import tarfile
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")


def archive(members: list[tuple[str, bytes]], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Zeros(io.RawIOBase):
    """`n` zero bytes, produced as read: nothing of that size is ever held."""

    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        size = min(len(buffer), self.left)
        buffer[:size] = bytes(size)
        self.left -= size
        return size


def zeros_archive(path: Path, size: int) -> bytes:
    """index.js plus one member of `size` zero bytes, gzipped as it streams to disk."""
    with gzip.open(path, "wb", compresslevel=9) as gz, tarfile.open(fileobj=gz, mode="w|") as tar:
        entry = tarfile.TarInfo("index.js")
        entry.size = 2
        tar.addfile(entry, io.BytesIO(b"//"))
        info = tarfile.TarInfo("zeros.bin")
        info.size = size
        tar.addfile(info, io.BufferedReader(Zeros(size)))
    return path.read_bytes()


async def upload(api: httpx.AsyncClient, data: bytes) -> httpx.Response:
    return await api.post("/bundles", files={"bundle": ("b.tar.gz", data, "application/gzip")})


def refused(response: httpx.Response, code: str, words: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["status"] == 422 and error["code"] == code and error["field"] == "bundle"
    assert words in error["message"], error["message"]


async def test_truncated_gzip_is_a_422(api: httpx.AsyncClient) -> None:
    data = archive([("index.js", b"export const x = 1;\n" * 2000)])
    refused(await upload(api, data[: len(data) // 2]), "invalid_archive", "not a readable tar.gz")


async def test_over_long_member_names_are_a_422(api: httpx.AsyncClient) -> None:
    refused(await upload(api, archive([("a" * 300 + ".js", b"x")])), "invalid_member_name", "too long")
    deep = "/".join(["directory"] * 150) + "/index.js"
    refused(await upload(api, archive([(deep, b"x")], tarfile.PAX_FORMAT)), "invalid_member_name", "too long")


async def test_non_utf8_member_name_is_a_422_not_a_failed_rollout(api: httpx.AsyncClient) -> None:
    name = b"caf\xe9.js".decode("utf-8", "surrogateescape")
    refused(
        await upload(api, archive([("index.js", b"x"), (name, b"x")])), "invalid_member_name", "not UTF-8"
    )


async def test_a_700_mb_bomb_is_refused_without_unpacking(api: httpx.AsyncClient, tmp_path: Path) -> None:
    data = zeros_archive(tmp_path / "bomb.tar.gz", 700 * 1024 * 1024)
    assert len(data) < 2 * 1024 * 1024
    started = time.monotonic()
    refused(await upload(api, data), "archive_too_large", "more than 524288000 bytes")
    assert time.monotonic() - started < 10


async def test_an_archive_expanding_over_the_ratio_is_refused(api: httpx.AsyncClient, tmp_path: Path) -> None:
    data = zeros_archive(tmp_path / "ratio.tar.gz", 60 * 1024 * 1024)  # ~60 KB compressed
    refused(await upload(api, data), "archive_ratio", "decompression bomb")


async def test_too_many_members_are_refused(api: httpx.AsyncClient) -> None:
    data = archive([("index.js", b"x")] + [(f"f/{i}.js", b"") for i in range(20_001)])
    started = time.monotonic()
    refused(await upload(api, data), "archive_too_many_files", "more than 20000 members")
    assert time.monotonic() - started < 30


async def test_a_plain_archive_still_uploads(api: httpx.AsyncClient) -> None:
    response = await upload(api, archive([("index.js", b"export const x = 1;"), ("chunks/a.js", b"//")]))
    assert response.status_code == 201, response.text
    assert response.json()["files"] == 2
