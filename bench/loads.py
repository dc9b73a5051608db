"""Synthetic browser-load metrics as a real Prometheus scrape target.

Exposes the series the RUM beacon exports (`skyline_unit_loads_total`,
`skyline_unit_load_seconds`) for any number of canaries at once. Values are
computed at scrape time from a rate and the elapsed time, not incremented
per load, so a thousand flows cost one exposition per scrape instead of
thousands of Python calls per second competing with the worker for the
machine's two cores.

The exposition is written as text directly, label sets rendered once per
flow: through prometheus_client's metric families 1,000 flows (12,000
samples) took 0.36 s per scrape, over a second on the busy shared machine,
past the 1 s scrape timeout, and Prometheus then had no loads for half the
scrapes of a 1,000-rollout run.

The `load_error` series of each flow exists (at 0) from the start, as an
exporter that pre-initialises its label sets does; a breach then shows up in
`rate()` after one scrape instead of two.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LABELS = ["apartment", "building", "unit", "version"]
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
FlowKey = tuple[str, str, str, str]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Flow:
    per_second: float
    load_seconds: float
    started: float
    # piecewise-constant error ratio: (from monotonic time, ratio)
    segments: list[tuple[float, float]] = field(default_factory=list)
    labels: str = ""  # the rendered label set, `apartment="..",building="..",...`

    def totals(self, now: float) -> tuple[float, float]:
        loads = self.per_second * max(0.0, now - self.started)
        errors = 0.0
        for i, (since, ratio) in enumerate(self.segments):
            until = self.segments[i + 1][0] if i + 1 < len(self.segments) else now
            errors += ratio * self.per_second * max(0.0, min(until, now) - since)
        return loads, errors


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(key: FlowKey) -> str:
    return ",".join(f'{name}="{_escape(v)}"' for name, v in zip(LABELS, key, strict=True))


class SyntheticRum:
    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.port = port
        self.address = f"{host}:{port}"
        self._flows: dict[FlowKey, Flow] = {}
        self._lock = threading.Lock()
        rum = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                body = rum.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="synthetic-rum")
        self._thread.start()

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
        key = (apartment, building, unit, version)
        flow = Flow(per_second, load_seconds, now, [(now, error_ratio)], _labels(key))
        with self._lock:
            self._flows[key] = flow

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

    def exposition(self) -> str:
        """Every flow's counters and histogram in Prometheus' text format, as of now."""
        now = time.monotonic()
        with self._lock:
            flows = list(self._flows.values())
        loads = [
            "# HELP skyline_unit_loads_total unit loads by outcome",
            "# TYPE skyline_unit_loads_total counter",
        ]
        seconds = [
            "# HELP skyline_unit_load_seconds unit load time",
            "# TYPE skyline_unit_load_seconds histogram",
        ]
        for flow in flows:
            total, errors = flow.totals(now)
            labels = flow.labels
            loads.append(f'skyline_unit_loads_total{{{labels},outcome="loaded"}} {total - errors!r}')
            loads.append(f'skyline_unit_loads_total{{{labels},outcome="load_error"}} {errors!r}')
            for le in BUCKETS:
                count = total if le >= flow.load_seconds else 0.0
                seconds.append(f'skyline_unit_load_seconds_bucket{{{labels},le="{le}"}} {count!r}')
            seconds.append(f'skyline_unit_load_seconds_bucket{{{labels},le="+Inf"}} {total!r}')
            seconds.append(f"skyline_unit_load_seconds_count{{{labels}}} {total!r}")
            seconds.append(f"skyline_unit_load_seconds_sum{{{labels}}} {total * flow.load_seconds!r}")
        return "\n".join([*loads, *seconds, ""])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
