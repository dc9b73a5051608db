"""Settings: env > .env > secrets dir > TOML settings file > defaults; TLS and worker tuning rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from adapters.temporal import temporal_tls
from skyline.settings import SECRETS_DIR_ENV, SETTINGS_FILE_ENV, Settings


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for name in list(os.environ):
        if name.startswith("SKYLINE_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_sources_in_priority_order(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    toml = tmp_path / "skyline.toml"
    toml.write_text(
        'temporal_address = "temporal.prod:7233"\n'
        's3_bucket = "from-file"\n'
        "worker_max_concurrent_activities = 32\n"
        'temporal_api_key = "from-file-key"\n'
    )
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "skyline_temporal_api_key").write_text("from-secret-file")
    clean_env.setenv(SETTINGS_FILE_ENV, str(toml))
    clean_env.setenv(SECRETS_DIR_ENV, str(secrets))
    clean_env.setenv("SKYLINE_S3_BUCKET", "from-env")

    settings = Settings()
    assert settings.temporal_address == "temporal.prod:7233"  # file
    assert settings.s3_bucket == "from-env"  # env beats the file
    assert settings.temporal_api_key is not None
    assert settings.temporal_api_key.get_secret_value() == "from-secret-file"  # secrets dir beats the file
    assert settings.worker_max_concurrent_activities == 32
    # one thread per slot, regular or local
    assert settings.worker_activity_threads == 32 + settings.worker_max_concurrent_local_activities
    assert "from-secret-file" not in repr(settings) and "from-secret-file" not in str(settings.model_dump())


def test_missing_settings_file_is_an_error_naming_it(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv(SETTINGS_FILE_ENV, str(tmp_path / "nope.toml"))
    with pytest.raises(ValueError, match="SKYLINE_SETTINGS_FILE"):
        Settings()


def test_temporal_tls_modes(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cert, key, ca = (tmp_path / n for n in ("c.pem", "k.pem", "ca.pem"))
    for path in (cert, key, ca):
        path.write_text("-----BEGIN X-----\n")
    assert temporal_tls(Settings()) is False  # the embedded dev server
    assert temporal_tls(Settings(temporal_api_key="k")) is True  # Temporal Cloud: system roots
    assert temporal_tls(Settings(temporal_api_key="k", temporal_tls=False)) is False  # explicit wins
    mtls = temporal_tls(
        Settings(
            temporal_tls_client_cert=cert,
            temporal_tls_client_key=key,
            temporal_tls_ca_cert=ca,
            temporal_tls_server_name="temporal.internal",
        )
    )
    assert not isinstance(mtls, bool)
    assert mtls.client_cert == cert.read_bytes() and mtls.domain == "temporal.internal"
    with pytest.raises(ValidationError, match="SKYLINE_TEMPORAL_TLS_CLIENT_KEY"):
        Settings(temporal_tls_client_cert=cert)
    with pytest.raises(ValidationError, match="contradicts"):
        Settings(temporal_tls=False, temporal_tls_ca_cert=ca)
    with pytest.raises(ValidationError, match="temporal_tls_ca_cert"):
        Settings(temporal_tls_ca_cert=tmp_path / "missing.pem")


def test_worker_tuning_bounds(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="worker_max_concurrent_workflow_tasks"):
        Settings(worker_max_concurrent_workflow_tasks=1)  # sticky queues need two slots
    with pytest.raises(ValidationError, match="worker_graceful_shutdown_seconds"):
        Settings(worker_graceful_shutdown_seconds=-1)
