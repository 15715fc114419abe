"""Prometheus: counters, a histogram and gauges from the runner's observer seam.

Two ways out: ``serve(port)`` exposes ``/metrics`` over HTTP while the
process lives (a service embedding interlock, or a long ``interlock run``),
and ``write_textfile(path)`` writes the node-exporter textfile format,
atomically, for batch runs that end before any scrape (``interlock run
--metrics-textfile``, written when the run finishes).

``prometheus-client`` is imported only when a ``PrometheusObserver`` is
created: interlock imports and runs without it.
"""

from __future__ import annotations

import math
from typing import Any

from interlock.adapters.runner import RunObserver

__all__ = ["PrometheusObserver", "MISSING_PROMETHEUS", "DURATION_BUCKETS"]

MISSING_PROMETHEUS = ("Prometheus metrics need the prometheus-client package, which is not installed: "
                      "pip install 'interlock[prometheus]'")

#: Histogram buckets (seconds) for tool call attempts: 5 ms to 2 min.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def _client() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        from interlock.adapters.cli import EnvironmentProblem

        raise EnvironmentProblem(MISSING_PROMETHEUS) from exc
    return prometheus_client


class PrometheusObserver(RunObserver):
    """Metrics of the runs it observes, in ``registry``.

    ``registry=None`` makes a private ``CollectorRegistry`` (two observers in one
    process never collide); pass ``prometheus_client.REGISTRY`` to join the
    process-wide one. ``textfile``: write the registry there when a run finishes.

    Exposed (names as scraped):

    - ``interlock_tool_calls_total{tool,mode,outcome}``: attempts finished
    - ``interlock_tool_duration_seconds{tool,mode}``: histogram of attempt durations
    - ``interlock_tool_calls_in_flight``: attempts started and not yet finished
    - ``interlock_health_score``: 0-100 at the end of the last run (NaN: unknown)
    - ``interlock_system_locked``: 1 when the last run ended locked, else 0
    - ``interlock_anomalies_total{kind}``: anomalies fired
    """

    def __init__(self, registry: Any = None, *, textfile: str | None = None) -> None:
        pc = _client()
        self._pc = pc
        self.registry = registry if registry is not None else pc.CollectorRegistry()
        self.textfile = textfile
        # anomalies of the current run already counted (state_changed runs after every step;
        # one observer may serve many runs, each with its own list)
        self._anomalies_of: int | None = None
        self._anomalies_seen = 0
        self.calls = pc.Counter("interlock_tool_calls", "Tool call attempts finished, by tool, mode and outcome",
                                ["tool", "mode", "outcome"], registry=self.registry)
        self.duration = pc.Histogram("interlock_tool_duration_seconds", "Duration of tool call attempts",
                                     ["tool", "mode"], buckets=DURATION_BUCKETS, registry=self.registry)
        self.in_flight = pc.Gauge("interlock_tool_calls_in_flight", "Tool call attempts started and not finished",
                                  registry=self.registry)
        self.health = pc.Gauge("interlock_health_score",
                               "System health score 0-100 at the end of the last run (NaN when unknown)",
                               registry=self.registry)
        self.locked = pc.Gauge("interlock_system_locked", "1 when the system was locked at the end of the last run",
                               registry=self.registry)
        self.anomalies = pc.Counter("interlock_anomalies", "Anomalies fired by the monitor, by kind", ["kind"],
                                    registry=self.registry)
        self.health.set(math.nan)
        self._server: Any = None
        self._thread: Any = None

    # ------------------------------------------------------------ observer

    def execution_started(self, cmd: Any, call: Any, time: float) -> None:
        self.in_flight.inc()

    def execution_finished(self, cmd: Any, call: Any, record: Any) -> None:
        self.in_flight.dec()
        self.calls.labels(tool=record.tool, mode=record.mode, outcome=record.outcome).inc()
        self.duration.labels(tool=record.tool, mode=record.mode).observe(max(0.0, float(record.duration_ms)) / 1000.0)

    def state_changed(self, orchestrator: Any) -> None:
        """After every committed step: health, lock and anomalies are live, not only at the end."""
        health = orchestrator.monitor.health()
        self.health.set(math.nan if health is None else float(health))
        self.locked.set(1 if orchestrator.locked else 0)
        if self._anomalies_of != id(orchestrator):
            self._anomalies_of, self._anomalies_seen = id(orchestrator), 0
        for a in orchestrator.anomalies[self._anomalies_seen:]:
            self.anomalies.labels(kind=a.kind).inc()
        self._anomalies_seen = len(orchestrator.anomalies)

    def run_finished(self, orchestrator: Any) -> None:
        self.state_changed(orchestrator)
        self._anomalies_of, self._anomalies_seen = None, 0  # the next run starts its own count
        if self.textfile:
            self.write_textfile(self.textfile)

    # ------------------------------------------------------------- outputs

    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        """Expose ``/metrics`` on ``addr:port`` from a daemon thread; returns the port
        (useful with ``port=0``). Loopback by default: opening it wider is a choice."""
        from interlock.adapters.cli import EnvironmentProblem

        if self._server is not None:
            raise EnvironmentProblem("this observer already serves its metrics")
        try:
            self._server, self._thread = self._pc.start_http_server(port, addr=addr, registry=self.registry)
        except OSError as exc:
            raise EnvironmentProblem(f"--metrics-port {port}: cannot listen on {addr}:{port}: "
                                     f"{exc.strerror or exc}") from exc
        return int(self._server.server_port)

    def close(self) -> None:
        """Stop serving (if serving). The metrics themselves stay readable."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def write_textfile(self, path: str) -> None:
        """The node-exporter textfile format, written atomically (temp file + rename)."""
        self._pc.write_to_textfile(str(path), self.registry)

    def text(self) -> str:
        """The exposition text, as a scrape would return it."""
        return self._pc.generate_latest(self.registry).decode("utf-8")
