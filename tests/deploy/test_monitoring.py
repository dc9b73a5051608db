"""Prometheus config, alert rules and the Grafana dashboard: valid, wired, and about real metrics.

Rules are checked and unit-tested by promtool (each alert must be able to
fire); every metric the rules and the dashboard name must be one Skyline or
the Temporal SDK actually exports (read from the session stack's worker);
every dashboard query must parse in the real Prometheus; the embedded stack's
Prometheus loads the rules and scrapes the worker.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from skyline.observability import API_METRICS, WORKER_METRICS
from stack.config import ALERT_RULES, compose_vcl, render_prometheus, render_vcl
from stack.embedded import EmbeddedStack
from tests.deploy.compose import ROOT

DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "skyline.json"
COMPOSE_PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
COMPOSE_RULES_PATH = "/etc/prometheus/alerts.yml"
RULES: dict[str, Any] = yaml.safe_load(ALERT_RULES.read_text(encoding="utf-8"))
ALERTS: dict[str, dict[str, Any]] = {r["alert"]: r for g in RULES["groups"] for r in g["rules"]}
# Browser-load metrics of the RUM beacons (api/beacons.py), queried by the analysis.
BEACON_METRICS = {"skyline_unit_loads_total", "skyline_unit_load_seconds"}
# SDK series that appear only once an activity ran or a workflow task failed
# (tests/observability/test_worker.py sees the first after a real rollout).
SDK_LAZY = {"temporal_workflow_task_execution_failed_total", "temporal_activity_schedule_to_start_latency"}


def compose_prometheus_text() -> str:
    return render_prometheus(
        api_target="api:8000",
        scrape_interval="15s",
        worker_dns=("worker", 9464),
        collector_dns=("collector", 8001),
        rule_files=[COMPOSE_RULES_PATH],
    )


def test_compose_prometheus_config_is_the_rendered_template() -> None:
    assert COMPOSE_PROMETHEUS.read_text(encoding="utf-8") == compose_prometheus_text(), (
        "deploy/prometheus/prometheus.yml is out of date; rewrite it with compose_prometheus_text()"
    )
    mounts = load_compose_mounts("prometheus")
    assert mounts["./deploy/prometheus/alerts.yml"] == COMPOSE_RULES_PATH


def load_compose_mounts(service: str) -> dict[str, str]:
    from tests.deploy.compose import load

    volumes = load()["services"][service]["volumes"]
    return {v.split(":")[0]: v.split(":")[1] for v in volumes if str(v).startswith("./")}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60, check=False)


def test_compose_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(compose_prometheus_text().replace(COMPOSE_RULES_PATH, str(ALERT_RULES)))
    checked = promtool("check", "config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_compose_vcl_is_the_rendered_template() -> None:
    """One source for both edges: the compose VCL is the template, rendered."""
    deployed = (DEPLOY / "varnish" / "skyline.vcl").read_text(encoding="utf-8")
    assert deployed == compose_vcl(), (
        "deploy/varnish/skyline.vcl is out of date; rewrite it with stack.config.compose_vcl()"
    )
    # Host, port and the PURGE ACL are all that differ from the embedded stack's rendering.
    embedded = render_vcl("127.0.0.1", 9000, "skyline")
    extra = [line for line in deployed.splitlines() if line not in embedded.splitlines()]
    assert [line.strip() for line in extra] == [
        '.host = "minio";',
        '"172.29.0.0"/24;  # may PURGE',
        '! "172.29.0.1";  # never PURGEs',
        'set bereq.http.Host = "minio:9000";',
    ], extra


def test_alert_rules_pass_promtool() -> None:
    checked = promtool("check", "rules", str(ALERT_RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def expected(alert: str, **labels: str) -> dict[str, Any]:
    rule = ALERTS[alert]

    def fill(text: str) -> str:
        return re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", lambda m: labels[m.group(1)], text)

    return {
        "exp_labels": {**rule["labels"], **labels},
        "exp_annotations": {k: fill(v) for k, v in rule["annotations"].items()},
    }


# (alert, series with values every minute, minute to evaluate at, labels of the firing alert or None)
CASES: list[tuple[str, dict[str, str], str, dict[str, str] | None]] = [
    # a counter series appears with its first rollback: increase() alone would miss it
    (
        "SkylineRolloutRolledBack",
        {'skyline_rollouts_finished_total{apartment="shop",outcome="rolled_back"}': "_ _ 1 1 1"},
        "3m",
        {"apartment": "shop"},
    ),
    (
        "SkylineRolloutRolledBack",
        {'skyline_rollouts_finished_total{apartment="shop",outcome="rolled_back"}': "1x20 2x5"},
        "22m",
        {"apartment": "shop"},
    ),
    (
        "SkylineRolloutRolledBack",
        {'skyline_rollouts_finished_total{apartment="shop",outcome="rolled_back"}': "1x30"},
        "20m",
        None,
    ),
    (
        "SkylineRolloutFailed",
        {'skyline_rollouts_finished_total{apartment="shop",outcome="failed"}': "_ 1 1"},
        "2m",
        {"apartment": "shop"},
    ),
    (
        "SkylineAnalysisInconclusive",
        {'skyline_analysis_verdicts_total{verdict="inconclusive"}': "0+1x30"},
        "20m",
        {},
    ),
    ("SkylineNoWorker", {'up{job="skyline-worker",instance="w1"}': "0x10"}, "5m", {}),
    ("SkylineNoWorker", {'up{job="skyline-worker",instance="w1"}': "1x10"}, "5m", None),
    ("SkylineWorkflowTaskFailures", {"temporal_workflow_task_execution_failed_total": "0+3x20"}, "15m", {}),
    (
        "SkylineActivityFailures",
        {'skyline_activity_failures_total{activity_type="run_analysis",error_type="Down"}': "0+6x40"},
        "30m",
        {"activity_type": "run_analysis", "error_type": "Down"},
    ),
    (
        "SkylineActivitySlotsExhausted",
        {'temporal_worker_task_slots_available{worker_type="ActivityWorker"}': "0x20"},
        "15m",
        {},
    ),
    (
        "SkylineApiDown",
        {'up{job="skyline-api",instance="api:8000"}': "0x10"},
        "5m",
        {"instance": "api:8000", "job": "skyline-api"},
    ),
    (
        "SkylineApiErrors",
        {
            'skyline_api_requests_total{status="200"}': "0+60x20",
            'skyline_api_requests_total{status="503"}': "0+30x20",
        },
        "15m",
        {},
    ),
]


def test_every_alert_has_a_firing_case() -> None:
    assert {alert for alert, *_ in CASES if _[-1] is not None} == set(ALERTS)


def test_alert_rules_fire_when_they_should(tmp_path: Path) -> None:
    tests = []
    for alert, series, at, labels in CASES:
        tests.append(
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                "alert_rule_test": [
                    {
                        "eval_time": at,
                        "alertname": alert,
                        "exp_alerts": [] if labels is None else [expected(alert, **labels)],
                    }
                ],
            }
        )
    spec = tmp_path / "alerts_test.yml"
    spec.write_text(
        yaml.safe_dump({"rule_files": [str(ALERT_RULES)], "evaluation_interval": "1m", "tests": tests})
    )
    result = promtool("test", "rules", str(spec))
    assert result.returncode == 0, result.stdout + result.stderr


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def dashboard_queries() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def test_dashboard_is_well_formed() -> None:
    board = dashboard()
    panels = board["panels"]
    assert board["uid"] and board["title"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys()
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}", panel["title"]
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "skyline.yml").read_text()
    )
    assert (
        provisioned["providers"][0]["options"]["path"]
        == load_compose_mounts("grafana")["./deploy/grafana/dashboards"]
    )


def metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\b((?:skyline|temporal)_[a-z0-9_]+)\b", expr))
    if re.search(r"\bup\{", expr):
        names.add("up")
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


@pytest.fixture(scope="module")
def exported(stack: EmbeddedStack) -> set[str]:
    """Metric names the session worker and API export right now, plus Skyline's declared ones."""
    names: set[str] = set()
    for url in (f"http://{stack.worker_metrics_address}/metrics", f"{stack.api_url}/metrics/"):
        text = httpx.get(url, timeout=10).text
        names |= {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    return names | WORKER_METRICS | API_METRICS | BEACON_METRICS | SDK_LAZY | {"up"}


def test_rules_and_dashboard_only_name_exported_metrics(exported: set[str]) -> None:
    exprs = [rule["expr"] for rule in ALERTS.values()] + dashboard_queries()
    named = set().union(*(metric_names(e) for e in exprs))
    assert named - exported == set(), "not exported by Skyline or the Temporal SDK"
    assert named >= WORKER_METRICS | API_METRICS, "a Skyline metric neither alerted on nor graphed"


def test_dashboard_queries_parse_in_prometheus(stack: EmbeddedStack) -> None:
    for expr in dashboard_queries():
        query = expr.replace("$__rate_interval", "1m").replace("$__range", "1h")
        response = httpx.get(f"{stack.prometheus_url}/api/v1/query", params={"query": query}, timeout=10)
        assert response.status_code == 200 and response.json()["status"] == "success", (expr, response.text)


def test_embedded_prometheus_loads_the_rules_and_scrapes_the_worker(stack: EmbeddedStack) -> None:
    groups = httpx.get(f"{stack.prometheus_url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert {g["name"] for g in groups} == {g["name"] for g in RULES["groups"]}
    deadline = time.monotonic() + 30
    health: list[str] = []
    while time.monotonic() < deadline:
        targets = httpx.get(f"{stack.prometheus_url}/api/v1/targets", timeout=10).json()["data"][
            "activeTargets"
        ]
        health = [t["health"] for t in targets if t["labels"]["job"] == "skyline-worker"]
        if health == ["up"]:
            return
        time.sleep(0.5)
    raise AssertionError(f"the worker's metrics endpoint is not scraped as up: {health}")
