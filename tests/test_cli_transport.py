"""The CLI's HTTP on the standard library (cli/transport.py): what it puts on the wire.

The exchanges themselves run against the live API in tests/cli (uploads, 4xx, 5xx, an unreachable API).
"""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP

from cli.transport import multipart, query_string


def test_query_strings_read_as_httpx_wrote_them() -> None:
    assert query_string({}) == ""
    assert query_string({"full": True, "dry": False}) == "?full=true&dry=false"
    assert query_string({"segment": ["eu", "beta"], "limit": 5}) == "?segment=eu&segment=beta&limit=5"
    assert query_string({"version": "1.1.0+build 7"}) == "?version=1.1.0%2Bbuild+7"


def test_a_multipart_upload_parses_back_to_the_file() -> None:
    data = bytes(range(256)) * 4
    body, content_type = multipart({"bundle": ('header "1".tar.gz', data, "application/gzip")})
    parsed = BytesParser(policy=HTTP).parsebytes(f"content-type: {content_type}\r\n\r\n".encode() + body)
    assert parsed.is_multipart()
    (part,) = parsed.iter_parts()
    assert part.get_param("name", header="content-disposition") == "bundle"
    assert part.get_filename() == 'header "1".tar.gz'
    assert part.get_content_type() == "application/gzip"
    assert part.get_payload(decode=True) == data
