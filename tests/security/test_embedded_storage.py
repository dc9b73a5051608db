"""The embedded S3 server serves signed requests only (issue 23, item 5).

Before, an unsigned `PUT private/tokens/evil.json` to the embedded S3 server was
stored (and 2.5 s later the token it named was an admin of the API), and unsigned
GET and LIST of `private/` answered. Now only requests signed (SigV4) with the key
pair the stack generated into its state dir are served, besides anonymous GET/HEAD
of an object under the prefixes the edge serves (manifests/, bundles/, loader/).
"""

from __future__ import annotations

import hashlib
import json
import stat
import uuid
from typing import Any

import boto3
import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from skyline.settings import S3_CREDENTIALS, Settings
from stack.embedded import EmbeddedStack

EVIL = json.dumps({"name": "evil", "role": "admin", "sha256": hashlib.sha256(b"evil-token").hexdigest()})


@pytest.fixture(scope="module")
def origin(settings: Settings) -> httpx.Client:
    assert settings.s3_endpoint_url is not None
    return httpx.Client(base_url=settings.s3_endpoint_url, timeout=10)


def client(settings: Settings, access_key: str, secret: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
    )


def status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def test_an_unsigned_put_of_a_token_is_refused(origin: httpx.Client, s3: Any, settings: Settings) -> None:
    key = f"private/tokens/evil-{uuid.uuid4().hex[:8]}.json"
    response = origin.put(f"/{settings.s3_bucket}/{key}", content=EVIL)
    assert response.status_code == 403 and b"AccessDenied" in response.content
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=settings.s3_bucket, Key=key)
    assert status(missing.value) == 404  # nothing was stored


def test_unsigned_reads_and_listings_of_private_are_refused(
    origin: httpx.Client, s3: Any, settings: Settings
) -> None:
    key = f"private/uploads/secret-{uuid.uuid4().hex[:8]}.tar.gz"
    s3.put_object(Bucket=settings.s3_bucket, Key=key, Body=b"secret")
    bucket = settings.s3_bucket
    for path, params in [
        (f"/{bucket}/{key}", {}),
        (f"/{bucket}", {"list-type": "2", "prefix": "private/"}),
        (f"/{bucket}", {}),
        (f"/{bucket}/{key}", {"acl": ""}),
    ]:
        answer = origin.get(path, params=params)
        assert answer.status_code == 403, (path, params, answer.status_code)
        assert b"secret" not in answer.content
    assert origin.head(f"/{bucket}/{key}").status_code == 403
    assert origin.delete(f"/{bucket}/{key}").status_code == 403
    assert origin.post("/moto-api/reset").status_code == 403  # moto's admin API: wipes everything
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"secret"


def test_a_wrong_secret_or_key_is_refused(s3: Any, settings: Settings) -> None:
    right = settings.aws_access_key_id.get_secret_value()
    key = f"private/tokens/evil-{uuid.uuid4().hex[:8]}.json"
    for access_key, secret in [(right, "not-the-secret"), ("skyline", "skyline-secret"), ("AKIAOTHER", "x")]:
        wrong = client(settings, access_key, secret)
        with pytest.raises(ClientError) as put:
            wrong.put_object(Bucket=settings.s3_bucket, Key=key, Body=EVIL.encode())
        assert status(put.value) == 403
        with pytest.raises(ClientError) as listing:
            wrong.list_objects_v2(Bucket=settings.s3_bucket, Prefix="private/")
        assert status(listing.value) == 403
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=settings.s3_bucket, Key=key)
    assert status(missing.value) == 404


def test_a_signed_request_replayed_with_another_body_is_refused(
    settings: Settings, origin: httpx.Client
) -> None:
    """The payload hash is signed; the body must match it."""
    # Not under private/tokens/: the signed PUT below stores its body, which is no token list.
    key = f"private/tests/replayed-{uuid.uuid4().hex[:8]}.json"
    url = f"{settings.s3_endpoint_url}/{settings.s3_bucket}/{key}"
    harmless = b"{}"
    request = AWSRequest(method="PUT", url=url, data=harmless)
    request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(harmless).hexdigest()
    credentials = Credentials(
        settings.aws_access_key_id.get_secret_value(), settings.aws_secret_access_key.get_secret_value()
    )
    S3SigV4Auth(credentials, "s3", settings.s3_region).add_auth(request)
    headers = dict(request.headers.items())
    swapped = origin.put(url, content=EVIL.encode(), headers=headers)
    assert swapped.status_code == 403 and b"XAmzContentSHA256Mismatch" in swapped.content
    signed = origin.put(url, content=harmless, headers=headers)  # the request as signed: served
    assert signed.status_code == 200, signed.text


def test_the_edge_and_anonymous_readers_still_get_public_files(
    origin: httpx.Client, s3: Any, settings: Settings
) -> None:
    key = f"bundles/tests-{uuid.uuid4().hex[:8]}/index.js"
    s3.put_object(Bucket=settings.s3_bucket, Key=key, Body=b"export {};", ContentType="text/javascript")
    assert origin.get(f"/{settings.s3_bucket}/{key}").content == b"export {};"
    edge = httpx.get(settings.public_url(key), timeout=10)
    assert edge.status_code == 200 and edge.content == b"export {};"
    # Public objects, not listings: enumerating bundles/ still needs a signature.
    listing = origin.get(f"/{settings.s3_bucket}", params={"list-type": "2", "prefix": "bundles/"})
    assert listing.status_code == 403
    assert origin.put(f"/{settings.s3_bucket}/{key}", content=b"evil").status_code == 403


def test_the_key_pair_is_generated_into_the_state_dir_readable_by_its_owner_only(
    stack: EmbeddedStack, settings: Settings
) -> None:
    path = stack.state_dir / S3_CREDENTIALS
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["access_key_id"] == settings.aws_access_key_id.get_secret_value()
    assert data["secret_access_key"] == settings.aws_secret_access_key.get_secret_value()
    assert data["secret_access_key"] != "skyline-secret" and len(data["secret_access_key"]) >= 32
    # A CLI or bench run with no keys configured finds them there, as the worker and API got them.
    found = Settings(state_dir=stack.state_dir)
    assert found.aws_secret_access_key.get_secret_value() == data["secret_access_key"]
