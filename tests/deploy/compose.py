"""Reading docker-compose.yml the way `docker compose` would (anchors, merges, ${VAR:-default})."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"

_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}")


def load() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return data


def interpolate(value: str) -> str:
    """Compose interpolation with an empty environment: defaults apply, `$$` is a literal `$`."""
    resolved = _VARIABLE.sub(lambda m: m.group(2) or "", value.replace("$$", "\0"))
    return resolved.replace("\0", "$")


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): interpolate(str(v)) for k, v in env.items()}


def published(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port of every `ports` entry ("host:container")."""
    mapping: dict[int, int] = {}
    for entry in service.get("ports") or []:
        host, _, container = str(entry).rpartition(":")
        mapping[int(container)] = int(host) if host else int(container)
    return mapping


def command_text(service: dict[str, Any]) -> str:
    command = service.get("command") or []
    return interpolate(command if isinstance(command, str) else "\n".join(str(c) for c in command))


def healthcheck_text(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test") or []
    return interpolate(test if isinstance(test, str) else " ".join(str(t) for t in test))
