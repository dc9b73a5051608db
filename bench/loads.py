"""Synthetic browser-load metrics as a real Prometheus scrape target.

Exposes the series the RUM beacon exports (`skyline_unit_loads_total`,
`skyline_unit_load_seconds`) for any number of canaries at once. Values are
computed at scrape time from a rate and the elapsed time, not incremented
per load, so a thousand flows cost one exposition per scrape instead of
thousands of Python calls per second competing with the worker for the
machine's two cores.

The `load_error` series of each flow exists (at 0) from the start, as an
exporter that pre-initialises its label sets does; a breach then shows up in
`rate()` after one scrape instead of two.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

LABELS = ["apartment", "building", "unit", "version"]
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
FlowKey = tuple[str, str, str, str]


@dataclass
class Flow:
    per_second: float
    load_seconds: float
    started: float
    # piecewise-constant error ratio: (from monotonic time, ratio)
    segments: list[tuple[float, float]] = field(default_factory=list)

    def totals(self, now: float) -> tuple[float, float]:
        loads = self.per_second * max(0.0, now - self.started)
        errors = 0.0
        for i, (since, ratio) in enumerate(self.segments):
            until = self.segments[i + 1][0] if i + 1 < len(self.segments) else now
            errors += ratio * self.per_second * max(0.0, min(until, now) - since)
        return loads, errors


class SyntheticRum(Collector):
    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.port = port
        self.address = f"{host}:{port}"
        self._flows: dict[FlowKey, Flow] = {}
        self._lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)

    def add(
        self,
        apartment: str,
        building: str,
        unit: str,
        version: str,
        *,
        per_second: float = 20.0,
        error_ratio: float = 0.0,
        load_seconds: float = 0.2,
    ) -> None:
        now = time.monotonic()
        flow = Flow(per_second, load_seconds, now, [(now, error_ratio)])
        with self._lock:
            self._flows[(apartment, building, unit, version)] = flow

    def set_error_ratio(self, apartment: str, building: str, unit: str, version: str, ratio: float) -> float:
        """Change a flow's failure ratio from now on; returns the monotonic time of the change."""
        now = time.monotonic()
        with self._lock:
            self._flows[(apartment, building, unit, version)].segments.append((now, ratio))
        return now

    def remove_where(self, apartment_prefix: str) -> None:
        with self._lock:
            for key in [k for k in self._flows if k[0].startswith(apartment_prefix)]:
                del self._flows[key]

    def __len__(self) -> int:
        return len(self._flows)

    def collect(self) -> Iterable[Metric]:
        now = time.monotonic()
        with self._lock:
            flows = list(self._flows.items())
        loads = CounterMetricFamily(
            "skyline_unit_loads", "unit loads by outcome", labels=[*LABELS, "outcome"]
        )
        seconds = HistogramMetricFamily("skyline_unit_load_seconds", "unit load time", labels=LABELS)
        for key, flow in flows:
            total, errors = flow.totals(now)
            loads.add_metric([*key, "loaded"], total - errors)
            loads.add_metric([*key, "load_error"], errors)
            buckets = [(str(le), total if le >= flow.load_seconds else 0.0) for le in BUCKETS]
            buckets.append(("+Inf", total))
            seconds.add_metric(list(key), buckets, sum_value=total * flow.load_seconds)
        yield loads
        yield seconds

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
