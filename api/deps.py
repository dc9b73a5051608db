"""Dependencies shared by routes: one Temporal client and one S3 client per process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from temporalio.client import Client

from adapters.manifest_store import ManifestStore
from api.auth import TokenStore
from api.errors import ApiError
from skyline.settings import Settings


@dataclass
class AppState:
    settings: Settings
    temporal: Client | None  # None in the collector (python -m collector): no route of it needs one
    store: ManifestStore
    tokens: TokenStore


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.skyline
    return state


def _settings(request: Request) -> Settings:
    return _state(request).settings


def _temporal(request: Request) -> Client:
    client = _state(request).temporal
    if client is None:  # a control route in an app without Temporal: its table lets none through
        raise ApiError(503, "not_ready", "this process has no Temporal client")
    return client


def _store(request: Request) -> ManifestStore:
    return _state(request).store


SettingsDep = Annotated[Settings, Depends(_settings)]
TemporalDep = Annotated[Client, Depends(_temporal)]
StoreDep = Annotated[ManifestStore, Depends(_store)]
