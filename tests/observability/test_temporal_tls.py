"""Skyline's one Temporal connect helper over real TLS: mTLS accepted, missing or foreign certs refused.

The dev server speaks plaintext, so the test puts a TLS-terminating proxy in
front of it (HTTP/2 via ALPN, client certificate required), with a throwaway
CA made here, and connects through worker.main.connect exactly as the worker
and the API do, from Settings built the way an operator configures them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import SecretStr
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from adapters.temporal import connect
from skyline.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

SERVER_NAME = "temporal.skyline.test"


@dataclass
class Pair:
    cert: Path
    key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pair:
    pair = Pair(directory / f"{stem}.pem", directory / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return pair


class Authority:
    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(self.key, hashes.SHA256())
        )
        self.pem = _write(directory, name, self.cert, self.key).cert

    def issue(self, name: str, *, server: bool) -> Pair:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return _write(self.directory, name, builder.sign(self.key, hashes.SHA256()), key)


@dataclass
class Pki:
    ca: Path
    server: Pair
    client: Pair
    foreign_client: Pair


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = Authority(directory, "skyline-test-ca")
    other = Authority(directory, "someone-elses-ca")
    return Pki(
        ca=ca.pem,
        server=ca.issue(SERVER_NAME, server=True),
        client=ca.issue("skyline-worker", server=False),
        foreign_client=other.issue("intruder", server=False),
    )


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(ConnectionError, OSError, RuntimeError):
        writer.close()


@pytest_asyncio.fixture(loop_scope="session")
async def tls_frontend(pki: Pki, settings: Settings) -> AsyncIterator[str]:
    """host:port of a TLS (client cert required) front for the session's Temporal dev server."""
    upstream_host, upstream_port = settings.temporal_address.rsplit(":", 1)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    context.load_cert_chain(str(pki.server.cert), str(pki.server.key))
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])  # gRPC clients insist on HTTP/2 being negotiated

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(upstream_host, int(upstream_port))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, up_writer), _pipe(up_reader, client_writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5)


def through(frontend: str, settings: Settings, **tls: object) -> Settings:
    return Settings.model_validate(
        {
            "temporal_address": frontend,
            "temporal_namespace": settings.temporal_namespace,
            "temporal_tls_server_name": SERVER_NAME,
            **tls,
        }
    )


async def test_mtls_with_the_configured_certificates(tls_frontend: str, pki: Pki, settings: Settings) -> None:
    conf = through(
        tls_frontend,
        settings,
        temporal_tls_ca_cert=pki.ca,
        temporal_tls_client_cert=pki.client.cert,
        temporal_tls_client_key=pki.client.key,
    )
    client = await asyncio.wait_for(connect(conf), 20)
    info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
    assert info.server_version


async def test_api_key_rides_on_the_same_tls_connection(
    tls_frontend: str, pki: Pki, settings: Settings
) -> None:
    conf = through(
        tls_frontend,
        settings,
        temporal_tls_ca_cert=pki.ca,
        temporal_tls_client_cert=pki.client.cert,
        temporal_tls_client_key=pki.client.key,
        temporal_api_key=SecretStr("an-api-key"),
    )
    client = await asyncio.wait_for(connect(conf), 20)
    assert (await client.workflow_service.get_system_info(GetSystemInfoRequest())).server_version


@pytest.mark.parametrize("who", ["no client certificate", "a foreign CA's certificate"])
async def test_connections_without_a_trusted_client_certificate_are_refused(
    who: str, tls_frontend: str, pki: Pki, settings: Settings
) -> None:
    tls: dict[str, object] = {"temporal_tls_ca_cert": pki.ca}
    if who == "a foreign CA's certificate":
        tls |= {
            "temporal_tls_client_cert": pki.foreign_client.cert,
            "temporal_tls_client_key": pki.foreign_client.key,
        }
    conf = through(tls_frontend, settings, **tls)
    with pytest.raises((RuntimeError, OSError, TimeoutError)):
        client = await asyncio.wait_for(connect(conf), 20)
        await asyncio.wait_for(client.workflow_service.get_system_info(GetSystemInfoRequest()), 10)
