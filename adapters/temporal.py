"""The one way Skyline processes reach Temporal: address, namespace, TLS or mTLS, API key, pydantic data."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from skyline.contracts import STATUS_QUERY
from skyline.settings import Settings

M = TypeVar("M", bound=BaseModel)


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None


def temporal_tls(settings: Settings) -> TLSConfig | bool:
    """TLS for the Temporal frontend: mTLS with a client cert, a private CA, or system roots."""
    if not settings.temporal_uses_tls:
        return False
    files = (settings.temporal_tls_ca_cert, settings.temporal_tls_client_cert)
    if files == (None, None) and settings.temporal_tls_server_name is None:
        return True  # system roots, e.g. Temporal Cloud with an API key
    return TLSConfig(
        server_root_ca_cert=_read(settings.temporal_tls_ca_cert),
        domain=settings.temporal_tls_server_name,
        client_cert=_read(settings.temporal_tls_client_cert),
        client_private_key=_read(settings.temporal_tls_client_key),
    )


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """The one way Skyline processes reach Temporal (worker, API, CLI)."""
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        api_key=api_key,
        tls=temporal_tls(settings),
        data_converter=pydantic_data_converter,
        runtime=runtime,
    )


async def workflow_status(
    handle: WorkflowHandle[Any, Any], execution: WorkflowExecutionStatus | None, model: type[M]
) -> M:
    """A running rollout's or fleet's live status (its `status` query); an ended one's is its
    result (a query would replay the whole history on a worker, for a value it already holds)."""
    if execution == WorkflowExecutionStatus.COMPLETED:
        final: M = await handle.result()
        return final
    live: M = await handle.query(STATUS_QUERY, result_type=model)
    return live
