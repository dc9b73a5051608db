"""Render the VCL and Prometheus templates kept in this package."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parent  # varnish/*.vcl, prometheus/*.yml (package data)
# Alert rules live with the production configs; a checkout has them, an installed wheel does not.
ALERT_RULES = TEMPLATE_DIR.parent / "deploy" / "prometheus" / "alerts.yml"

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Z0-9_]+)\s*\}\}")


def render(template: str, values: dict[str, str]) -> str:
    """Replace every `{{NAME}}`; a placeholder without a value is an error."""
    missing = sorted({m.group(1) for m in _PLACEHOLDER.finditer(template)} - values.keys())
    if missing:
        raise KeyError(f"no value for template placeholder(s): {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def template_text(relative: str) -> str:
    return (TEMPLATE_DIR / relative).read_text(encoding="utf-8")


# The compose network only the purgers join (docker-compose.yml `networks.purge`: the
# workers, the API for gc, and the edge). Its gateway is the Docker host's side of the
# bridge, which connections through published ports may come from: never a purger.
PURGE_SUBNET = "172.29.0.0/24"
PURGE_GATEWAY = "172.29.0.1"
COMPOSE_VCL = TEMPLATE_DIR.parent / "deploy" / "varnish" / "skyline.vcl"


def _acl_entry(entry: str) -> str:
    """`a.b.c.d/n` admits a network, `!a.b.c.d` excludes one address (the more specific wins)."""
    if entry.startswith("!"):
        return f'\n    ! "{entry[1:]}";  # never PURGEs'
    address, _, bits = entry.partition("/")
    return f'\n    "{address}"/{bits or "32"};  # may PURGE'


def render_vcl(s3_host: str, s3_port: int, bucket: str = "skyline", purgers: Sequence[str] = ()) -> str:
    """The edge's VCL: one template for the embedded stack and compose.

    `purgers` are CIDRs allowed to PURGE besides loopback, and `!address` exclusions."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise ValueError(f"{bucket!r} is not an S3 bucket name")
    return render(
        template_text("varnish/skyline.vcl"),
        {
            "S3_HOST": s3_host,
            "S3_PORT": str(s3_port),
            "BUCKET": bucket.replace(".", "\\."),
            "PURGERS": "".join(_acl_entry(entry) for entry in purgers),
        },
    )


def compose_vcl() -> str:
    """deploy/varnish/skyline.vcl: the template for minio:9000, PURGE from the purge network
    (not its gateway)."""
    return render_vcl("minio", 9000, "skyline", [PURGE_SUBNET, f"!{PURGE_GATEWAY}"])


def render_prometheus(
    api_target: str,
    scrape_interval: str = "5s",
    evaluation_interval: str | None = None,
    extra_targets: list[str] | None = None,
    worker_targets: list[str] | None = None,
    worker_dns: tuple[str, int] | None = None,
    rule_files: list[str] | None = None,
    collector_targets: list[str] | None = None,
    collector_dns: tuple[str, int] | None = None,
) -> str:
    """`worker_dns=(name, port)` and `collector_dns` find every replica behind a DNS name
    (compose replicas); else the static targets."""
    return render(
        template_text("prometheus/prometheus.yml"),
        {
            "SCRAPE_INTERVAL": scrape_interval,
            "EVALUATION_INTERVAL": evaluation_interval or scrape_interval,
            "API_TARGET": api_target,
            "EXTRA_TARGETS": json.dumps(list(extra_targets or [])),
            "WORKER_DISCOVERY": discovery(worker_targets, worker_dns),
            "COLLECTOR_DISCOVERY": discovery(collector_targets, collector_dns),
            "RULE_FILES": json.dumps(list(rule_files or [])),
        },
    )


def discovery(targets: list[str] | None, dns: tuple[str, int] | None) -> str:
    """A scrape job's targets: every address behind `dns=(name, port)`, else `targets`."""
    # JSON is YAML flow syntax: lists and mappings render without indentation rules.
    if dns is not None:
        name, port = dns
        return "dns_sd_configs: " + json.dumps([{"names": [name], "type": "A", "port": port}])
    return "static_configs: " + json.dumps([{"targets": list(targets or [])}])


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
