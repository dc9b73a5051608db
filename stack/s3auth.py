"""Signed requests only: a WSGI gate in front of the embedded S3 server (issue 23, item 5).

moto's server accepts any request, signed or not, with any key: on a shared host
anyone could write `private/tokens/...` (an API token of their choosing) or read
uploads. This gate checks AWS Signature Version 4 with the key pair the stack
generated at first start (stack/embedded.py, `<state>/s3-credentials.json`) and
answers 403 in S3's error shape otherwise. The one exception is what the edge
fetches, which it cannot sign (no SigV4 in VCL): anonymous GET and HEAD of an
object under the public prefixes stack/varnish/skyline.vcl serves.

The signature is recomputed with botocore's own signer (`S3SigV4Auth`: the same
canonical request, string to sign and key derivation boto3 and the AWS CLI sign
with), over exactly the headers the request says it signed, and compared in
constant time. A request signed more than 15 minutes from now (S3's window) is
refused, and a payload hash the request signed must match the body it carries,
so a captured request cannot be replayed with another body.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.auth import SIGV4_TIMESTAMP, S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
# stack/s3server.py's body reader: the body, or None when fewer bytes came than announced.
ReadBody = Callable[[dict[str, Any]], bytes | None]

PUBLIC_PREFIXES = ("manifests/", "bundles/", "loader/")
SKEW = timedelta(minutes=15)
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<sig>[0-9a-f]{64})$"
)
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class KeyPair:
    access_key_id: str
    secret_access_key: str

    @classmethod
    def load(cls, path: Path) -> KeyPair:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(str(data["access_key_id"]), str(data["secret_access_key"]))


def _deny(start_response: StartResponse, code: str, message: str) -> Iterable[bytes]:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{message}</Message></Error>"
    ).encode()
    start_response("403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]


def public_read(environ: dict[str, Any], bucket: str) -> bool:
    """An anonymous GET/HEAD of one object the edge serves (no listing, no sub-resource)."""
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD") or environ.get("QUERY_STRING"):
        return False
    path = str(environ.get("PATH_INFO", ""))
    prefix = f"/{bucket}/"
    if not path.startswith(prefix):
        return False
    key = path[len(prefix) :]
    return key.startswith(PUBLIC_PREFIXES) and not key.endswith("/") and ".." not in key.split("/")


def _raw_path(environ: dict[str, Any]) -> str:
    """The path as it was on the wire (what the client signed), without the query."""
    raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/"))
    return raw.split("?", 1)[0]


class SigV4Gate:
    """WSGI middleware: pass signed requests (and the edge's anonymous reads) to `app`."""

    def __init__(
        self, app: WSGIApp, keys: KeyPair, bucket: str, read_body: ReadBody, incomplete: bytes
    ) -> None:
        self.app = app
        self.keys = keys
        self.bucket = bucket
        self.read_body = read_body
        self.incomplete = incomplete

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if "HTTP_AUTHORIZATION" not in environ:
            if public_read(environ, self.bucket):
                return self.app(environ, start_response)
            return _deny(start_response, "AccessDenied", "Access Denied: sign the request (SigV4)")
        problem = self.check(environ)
        if problem == "incomplete":
            start_response("400 Bad Request", [("Content-Type", "application/xml")])
            return [self.incomplete]
        if problem is not None:
            return _deny(start_response, problem[0], problem[1])
        return self.app(environ, start_response)

    def check(self, environ: dict[str, Any]) -> tuple[str, str] | str | None:
        """None when the signature holds; else (S3 error code, message), or "incomplete"."""
        match = _AUTH.match(str(environ["HTTP_AUTHORIZATION"]).strip())
        if match is None:
            return "AccessDenied", "only AWS4-HMAC-SHA256 header signatures are accepted"
        parts = match["cred"].split("/")
        if len(parts) != 5 or parts[4] != "aws4_request":
            return "AuthorizationHeaderMalformed", "bad credential scope"
        # moto serves every AWS API on this port; the tests' CloudFront is one of them.
        access_key, day, region, service = parts[0], parts[1], parts[2], parts[3]
        if not hmac.compare_digest(access_key.encode(), self.keys.access_key_id.encode()):
            return "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."
        stamp = str(environ.get("HTTP_X_AMZ_DATE", ""))
        try:
            when = datetime.strptime(stamp, SIGV4_TIMESTAMP).replace(tzinfo=UTC)
        except ValueError:
            return "AccessDenied", "X-Amz-Date missing or malformed"
        if stamp[:8] != day or abs(datetime.now(UTC) - when) > SKEW:
            return "RequestTimeTooSkewed", "the request time is too far from the server time"
        signed = match["signed"].split(";")
        if "host" not in signed:
            return "AccessDenied", "the Host header must be signed"
        payload = str(environ.get("HTTP_X_AMZ_CONTENT_SHA256", ""))
        body = b""
        if _HEX64.fullmatch(payload) or service != "s3":
            # S3 signs the body's hash in a header; other services sign the body itself.
            read = self.read_body(environ)
            if read is None:
                return "incomplete"
            body = read
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            environ["wsgi.input_terminated"] = False
            if payload and not hmac.compare_digest(hashlib.sha256(body).hexdigest(), payload):
                return "XAmzContentSHA256Mismatch", "the body does not match the signed payload hash"
        elif payload != "UNSIGNED-PAYLOAD" or environ.get("REQUEST_METHOD") in ("PUT", "POST", "DELETE"):
            return "AccessDenied", "sign the payload hash (x-amz-content-sha256)"
        headers: dict[str, str] = {}
        for name in signed:
            key = (
                "CONTENT_TYPE"
                if name == "content-type"
                else "CONTENT_LENGTH"
                if name == "content-length"
                else ""
            )
            key = key or "HTTP_" + name.upper().replace("-", "_")
            if key not in environ:
                return "AccessDenied", f"signed header {name} is missing"
            headers[name] = str(environ[key])
        query = str(environ.get("QUERY_STRING", ""))
        url = f"http://{headers['host']}{_raw_path(environ)}" + (f"?{query}" if query else "")
        request = AWSRequest(method=str(environ["REQUEST_METHOD"]), url=url, headers=headers, data=body)
        request.context["timestamp"] = stamp
        kind = S3SigV4Auth if service == "s3" else SigV4Auth
        signer = kind(Credentials(access_key, self.keys.secret_access_key), service, region)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if not hmac.compare_digest(expected, match["sig"]):
            return (
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        return None
