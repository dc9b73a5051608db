"""Reading docker-compose.yml the way `docker compose` would (anchors, merges, ${VAR:-default}, ${VAR:?})."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"

_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")

# What an operator must set (the file gives these no default): sample values for the tests.
REQUIRED_ENV = {
    "MINIO_ROOT_USER": "minio-operator",
    "MINIO_ROOT_PASSWORD": "minio-operator-password",
    "TEMPORAL_DB_PASSWORD": "temporal-db-password",
    "GRAFANA_ADMIN_PASSWORD": "grafana-admin-password",
    "SKYLINE_BEACON_KEY": "beacon-key-" + "0" * 32,
    "SKYLINE_CONTROL_KEY": "control-key-" + "0" * 32,
    "SKYLINE_AUTH_TOKENS": '["ops:admin:' + "0" * 64 + '"]',
}


class MissingVariable(KeyError):
    """`${NAME:?message}` with NAME unset or empty: `docker compose` refuses to start."""


def load() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return data


def interpolate(value: str, env: Mapping[str, str] = REQUIRED_ENV) -> str:
    """Compose interpolation against `env` (default: only the required variables set):
    `${A:-x}` defaults, `${A:?why}` raises MissingVariable when A is unset, `$$` is a literal `$`."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        found = env.get(name)
        if op in (":?", "?"):
            if not found if op == ":?" else found is None:
                raise MissingVariable(f"{name}: {arg}")
            return found or ""
        if op in (":-", "-"):
            return (found or arg) if op == ":-" else (arg if found is None else found)
        return found or ""

    resolved = _VARIABLE.sub(one, value.replace("$$", "\0"))
    return resolved.replace("\0", "$")


def variables(text: str) -> list[tuple[str, str, str]]:
    """(name, operator, default or message) of every `${...}` in `text`."""
    return [(m.group(1), m.group(2) or "", m.group(3) or "") for m in _VARIABLE.finditer(text)]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): interpolate(str(v)) for k, v in env.items()}


def bindings(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of every `ports` entry; "" = all interfaces."""
    out: list[tuple[str, int, int]] = []
    for entry in service.get("ports") or []:
        parts = str(entry).split(":")
        container = int(parts[-1])
        host = parts[-2] if len(parts) >= 2 else str(container)
        low, _, high = host.partition("-")  # a range: one host port per replica
        address = ":".join(parts[:-2])
        out.extend((address, port, container) for port in range(int(low), int(high or low) + 1))
    return out


def published(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port of every `ports` entry ("[address:]host:container")."""
    return {container: host for _, host, container in bindings(service)}


def listening(service: dict[str, Any]) -> set[int]:
    """Ports other services of the compose network reach: `expose` and published container ports."""
    return {int(p) for p in service.get("expose") or []} | set(published(service))


def command_text(service: dict[str, Any]) -> str:
    command = service.get("command") or []
    return interpolate(command if isinstance(command, str) else "\n".join(str(c) for c in command))


def healthcheck_text(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test") or []
    return interpolate(test if isinstance(test, str) else " ".join(str(t) for t in test))
