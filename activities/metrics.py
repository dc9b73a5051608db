"""Prometheus queries for canary analysis (judged by the workflow, not here)."""

from __future__ import annotations

import math

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from pydantic import BaseModel
from temporalio import activity
from urllib3.util.retry import Retry

from skyline.analysis import MetricQuery


class QueryMetricsInput(BaseModel):
    queries: list[MetricQuery]


class QueryMetricsResult(BaseModel):
    values: dict[str, float | None]
    errors: dict[str, str]


def _scalar(result: list[dict[str, object]]) -> float | None:
    """First sample of an instant vector; empty vectors and NaN are 'no data'."""
    if not result:
        return None
    value = result[0].get("value")
    if not isinstance(value, list) or len(value) != 2:
        return None
    number = float(value[1])
    return None if math.isnan(number) or math.isinf(number) else number


class MetricsActivities:
    def __init__(self, prometheus_url: str, timeout_seconds: float) -> None:
        # No client-side retries: Temporal's retry policy owns retrying, so an
        # outage shows up in the workflow's history instead of hiding in here.
        self.prometheus = PrometheusConnect(
            url=prometheus_url, disable_ssl=True, retry=Retry(total=0), timeout=timeout_seconds
        )

    @activity.defn
    def query_canary_metrics(self, inp: QueryMetricsInput) -> QueryMetricsResult:
        values: dict[str, float | None] = {}
        errors: dict[str, str] = {}
        for query in inp.queries:
            try:
                result = self.prometheus.custom_query(query.promql)
            except PrometheusApiClientException as exc:
                if "Status Code 5" in str(exc):
                    raise RuntimeError(f"Prometheus failed: {exc}") from exc
                # The server answered but refused the query: a config problem
                # that retrying will not fix; report it as evidence missing.
                values[query.name] = None
                errors[query.name] = f"Prometheus rejected the query: {exc}"
                continue
            except requests.RequestException as exc:
                # Unreachable or timing out: raise so the retry policy retries,
                # and the workflow counts it as an error once retries run out.
                raise RuntimeError(f"Prometheus unreachable: {exc}") from exc
            values[query.name] = _scalar(result)
        return QueryMetricsResult(values=values, errors=errors)
