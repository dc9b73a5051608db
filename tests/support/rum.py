"""A real Prometheus scrape target whose browser-load metrics a test controls.

It exposes the same series the RUM beacon endpoint exports
(skyline_unit_loads_total, skyline_unit_load_seconds, and the LCP histogram
skyline_web_vitals_lcp_seconds when a flow reports one), and a background
thread keeps loads flowing so rate() has something to measure.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from skyline.analysis import canary_queries

LABELS = ("apartment", "building", "unit", "version")


@dataclass
class Traffic:
    labels: tuple[str, str, str, str]
    loads_per_tick: int
    error_ratio: float
    load_seconds: float
    lcp_seconds: float | None = None


class RumTarget:
    def __init__(self, port: int) -> None:
        self.registry = CollectorRegistry()
        self.loads = Counter(
            "skyline_unit_loads", "unit loads by outcome", [*LABELS, "outcome"], registry=self.registry
        )
        self.seconds = Histogram(
            "skyline_unit_load_seconds",
            "unit load time",
            LABELS,
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self.lcp = Histogram(
            "skyline_web_vitals_lcp_seconds",
            "Largest Contentful Paint",
            LABELS,
            buckets=(0.5, 1.0, 2.5, 4.0, 10.0),
            registry=self.registry,
        )
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self._flows: dict[int, Traffic] = {}
        self._keys = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server, _ = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tick(self) -> None:
        with self._lock:
            flows = list(self._flows.values())
        for flow in flows:
            errors = round(flow.loads_per_tick * flow.error_ratio)
            self.loads.labels(*flow.labels, "loaded").inc(flow.loads_per_tick - errors)
            if errors:
                self.loads.labels(*flow.labels, "load_error").inc(errors)
            for _ in range(flow.loads_per_tick):
                self.seconds.labels(*flow.labels).observe(flow.load_seconds * random.uniform(0.8, 1.0))
                if flow.lcp_seconds is not None:
                    self.lcp.labels(*flow.labels).observe(flow.lcp_seconds)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self._tick()

    @contextmanager
    def traffic(
        self,
        apartment: str,
        building: str,
        unit: str,
        version: str,
        *,
        loads_per_tick: int = 10,
        error_ratio: float = 0.0,
        load_seconds: float = 0.2,
        lcp_seconds: float | None = None,
    ) -> Iterator[None]:
        key = next(self._keys)
        flow = Traffic(
            (apartment, building, unit, version), loads_per_tick, error_ratio, load_seconds, lcp_seconds
        )
        with self._lock:
            self._flows[key] = flow
        try:
            yield
        finally:
            with self._lock:
                del self._flows[key]

    def wait_visible(
        self, prometheus_url: str, apartment: str, building: str, unit: str, version: str, timeout: float = 30
    ) -> None:
        """Block until Prometheus has scraped enough of this flow for rate() to answer."""
        query = canary_queries(apartment, building, unit, version, 10)[0][1]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": query}, timeout=5)
            result = response.json()["data"]["result"]
            if result and float(result[0]["value"][1]) > 0:
                return
            time.sleep(0.2)
        raise AssertionError(f"Prometheus never saw traffic for {unit}@{version} ({query})")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._server.shutdown()
