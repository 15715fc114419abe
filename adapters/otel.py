"""OpenTelemetry: a span per tool-call attempt and two metrics, from the runner's observer seam.

Spans follow the GenAI semantic conventions for tool execution
(``execute_tool {gen_ai.tool.name}``, ``gen_ai.operation.name``,
``gen_ai.tool.name``, ``gen_ai.tool.call.id``) plus ``interlock.*``
attributes saying why the call ran in its mode. All attempts of one run hang
under one ``interlock run`` span, so a run is one trace.

Only ``opentelemetry-api`` is used, and only when an ``OtelObserver`` is
created: interlock imports and runs without it. Where the telemetry goes is
the application's choice (an SDK with exporters, or ``opentelemetry-instrument``);
with no SDK configured, the API's no-op providers make this free.
"""

from __future__ import annotations

from typing import Any

from interlock.adapters.runner import RunObserver

__all__ = ["OtelObserver", "MISSING_OTEL", "RUN_SPAN"]

#: The parent of every attempt span of one run (started with the run's first attempt).
RUN_SPAN = "interlock run"

MISSING_OTEL = ("OpenTelemetry export needs the opentelemetry-api package, which is not installed: "
                "pip install 'interlock[otel]' (plus an SDK and exporter, e.g. opentelemetry-sdk)")

#: Bucket boundaries (seconds) suggested to the SDK for tool durations: 5 ms to 2 min.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def _api() -> tuple[Any, Any]:
    try:
        from opentelemetry import metrics, trace
    except ImportError as exc:
        from interlock.adapters.cli import EnvironmentProblem

        raise EnvironmentProblem(MISSING_OTEL) from exc
    return trace, metrics


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("interlock")
    except PackageNotFoundError:
        return None


def error_type(error: str | None, outcome: str) -> str:
    """``error.type`` for a failed attempt: the exception's class name when the
    message starts with one (``"ValueError: ..."``), else the outcome (``failed``, ``lost``)."""
    if error:
        head = error.split(":", 1)[0].strip()
        if head and head.replace(".", "").replace("_", "").isalnum() and not head[0].isdigit() and " " not in head:
            return head
    return outcome


class OtelObserver(RunObserver):
    """Spans and metrics for every tool-call attempt of the runs it observes.

    ``tracer_provider`` / ``meter_provider``: where to send them; ``None`` uses
    the global providers (``opentelemetry.trace.set_tracer_provider`` or
    ``opentelemetry-instrument``). Raises ``EnvironmentProblem`` (exit 3 in the
    CLI) when ``opentelemetry-api`` is not installed.
    """

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        trace, metrics = _api()
        from opentelemetry.trace import Status, StatusCode

        self._trace = trace
        self._status, self._code = Status, StatusCode
        self.tracer = trace.get_tracer("interlock", _version(), tracer_provider=tracer_provider)
        meter = metrics.get_meter("interlock", _version(), meter_provider=meter_provider)
        self.duration = meter.create_histogram(
            "interlock.tool.duration", unit="s",
            description="Duration of tool call attempts, by tool, mode and outcome",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.calls = meter.create_counter(
            "interlock.tool.calls", unit="{call}",
            description="Tool call attempts, by tool, mode (mock, dry_run, live) and outcome",
        )
        self._run_span: Any = None
        self._spans: dict[tuple[str, int], Any] = {}

    # ------------------------------------------------------------ observer

    def execution_started(self, cmd: Any, call: Any, time: float) -> None:
        if self._run_span is None:
            self._run_span = self.tracer.start_span(RUN_SPAN)
        attrs = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": cmd.tool,
            "gen_ai.tool.call.id": cmd.call_id,
            "interlock.mode": cmd.mode.label,
            "interlock.risk": call.contract.risk.value,
            "interlock.confidence": float(call.confidence),
            "interlock.attempt": int(cmd.attempt),
            "interlock.agent_id": call.agent_id,
            "interlock.plan_id": call.plan_id,
        }
        if call.contract.description:
            attrs["gen_ai.tool.description"] = call.contract.description
        span = self.tracer.start_span(f"execute_tool {cmd.tool}", context=self._trace.set_span_in_context(self._run_span),
                                      kind=self._trace.SpanKind.INTERNAL, attributes=attrs)
        self._spans[(cmd.call_id, int(cmd.attempt))] = span

    def execution_finished(self, cmd: Any, call: Any, record: Any) -> None:
        decision = record.decision if isinstance(record.decision, dict) else {}
        span = self._spans.pop((record.call_id, int(record.attempt)), None)
        if span is not None:
            span.set_attribute("interlock.outcome", record.outcome)
            span.set_attribute("interlock.mode", record.mode)
            if decision.get("rule"):
                span.set_attribute("interlock.decision.rule", str(decision["rule"]))
            if decision.get("approved_by"):
                span.set_attribute("interlock.approved_by", str(decision["approved_by"]))
            if record.outcome != "succeeded":
                etype = error_type(record.error, record.outcome)
                span.set_attribute("error.type", etype)
                span.add_event("exception", {"exception.type": etype,
                                             "exception.message": record.error or record.outcome})
                span.set_status(self._status(self._code.ERROR, record.error or record.outcome))
            span.end()
        labels = {"tool": record.tool, "mode": record.mode, "outcome": record.outcome}
        self.calls.add(1, labels)
        self.duration.record(max(0.0, float(record.duration_ms)) / 1000.0, labels)

    def run_finished(self, orchestrator: Any) -> None:
        for span in self._spans.values():  # an attempt that never reported: say so, do not leak it
            span.set_status(self._status(self._code.ERROR, "the run ended before this attempt reported"))
            span.end()
        self._spans.clear()
        run = self._run_span or self.tracer.start_span(RUN_SPAN)
        health = orchestrator.monitor.health()
        run.set_attribute("interlock.run_id", orchestrator.run_id)
        run.set_attribute("interlock.exit_code", orchestrator.exit_code())
        run.set_attribute("interlock.calls", len(orchestrator.calls))
        run.set_attribute("interlock.system_locked", bool(orchestrator.locked))
        run.set_attribute("interlock.anomalies", len(orchestrator.anomalies))
        if health is not None:
            run.set_attribute("interlock.health_score", float(health))
        run.end()
        self._run_span = None
