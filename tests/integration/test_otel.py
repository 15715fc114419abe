"""OtelObserver on real runs, read back through the SDK's in-memory exporter and reader."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from interlock.adapters.bootstrap import Runtime
from interlock.adapters.cli import EnvironmentProblem, main
from interlock.adapters.otel import RUN_SPAN, OtelObserver, error_type
from interlock.adapters.registry import ToolRegistry

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
SEED_FILES = {"VERSION": "1.1.0\n", "README.md": "# Demo\n", "config.yaml": "retries: 3\n",
              "CHANGELOG.md": "# Changelog\n", "cache/build.tmp": "stale\n"}


class Telemetry:
    def __init__(self) -> None:
        self.spans_out = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans_out))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.observer = OtelObserver(self.tracer_provider, self.meter_provider)

    def spans(self) -> list:
        return list(self.spans_out.get_finished_spans())

    def points(self, name: str) -> list:
        data = self.reader.get_metrics_data()
        return [p for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
                if m.name == name for p in m.data.data_points]

    def unit(self, name: str) -> str:
        data = self.reader.get_metrics_data()
        return next(m.unit for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
                    if m.name == name)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


@pytest.fixture(scope="module")
def fs_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Telemetry, Path]:
    tmp = tmp_path_factory.mktemp("otel")
    ws = tmp / "ws"
    for rel, text in SEED_FILES.items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(text)
    reg = ToolRegistry()
    tel = Telemetry()
    rt = Runtime.from_files(EX / "fs/catalog.yaml", policy=EX / "fs/policy.yaml", approvals=EX / "fs/approvals.yaml",
                            tools=[str(EX / "tools/fs_tools.py"), str(EX / "tools/release_tools.py")],
                            registry=reg, entry_points=False, fake_clock=True, seed=1, state_dir=None,
                            observers=(tel.observer,))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INTERLOCK_WORKSPACE", str(ws))
        result = rt.run(EX / "fs/plans.yaml", out=tmp / "run")
    assert result.exit_code == 1
    return tel, tmp / "run"


def test_one_span_per_attempt_with_the_genai_attributes(fs_run: tuple[Telemetry, Path]) -> None:
    tel, run = fs_run
    log = jsonl(run / "tool_execution_log.jsonl")
    tools = [s for s in tel.spans() if s.name != RUN_SPAN]
    assert len(tools) == len(log) == 11
    by_attempt = {(s.attributes["gen_ai.tool.call.id"], s.attributes["interlock.attempt"]): s for s in tools}
    for line in log:
        span = by_attempt[(line["call_id"], line["attempt"])]
        a = span.attributes
        assert span.name == f"execute_tool {line['tool']}"
        assert a["gen_ai.operation.name"] == "execute_tool"
        assert a["gen_ai.tool.name"] == line["tool"]
        assert a["interlock.mode"] == line["mode"]
        assert a["interlock.risk"] == line["risk"]
        assert a["interlock.confidence"] == line["confidence"]
        assert a["interlock.decision.rule"] == line["decision"]["rule"]
        assert a["interlock.agent_id"] == line["agent_id"]
        assert a["interlock.plan_id"] == line["plan_id"]
        assert a["interlock.outcome"] == line["outcome"]
        if line["outcome"] == "succeeded":
            assert span.status.status_code is StatusCode.UNSET
        else:
            assert span.status.status_code is StatusCode.ERROR
            assert span.status.description == line["error"]
            assert a["error.type"] == "ReleaseCheckFailed"
            assert span.events[0].name == "exception"
    assert by_attempt[("release-1.2.0/tag", 1)].attributes["interlock.approved_by"] == "alice"


def test_a_run_is_one_trace(fs_run: tuple[Telemetry, Path]) -> None:
    tel, run = fs_run
    spans = tel.spans()
    [root] = [s for s in spans if s.name == RUN_SPAN]
    summary = json.loads((run / "orchestration_summary.json").read_text())
    assert root.attributes["interlock.run_id"] == summary["run_id"]
    assert root.attributes["interlock.exit_code"] == 1
    assert root.attributes["interlock.calls"] == 12
    assert root.attributes["interlock.health_score"] == pytest.approx(summary["metrics"]["system_health_score"])
    for s in spans:
        if s is not root:
            assert s.parent.span_id == root.context.span_id
            assert s.context.trace_id == root.context.trace_id


def test_metrics_count_every_attempt_by_tool_mode_outcome(fs_run: tuple[Telemetry, Path]) -> None:
    tel, run = fs_run
    log = jsonl(run / "tool_execution_log.jsonl")
    expected = Counter((x["tool"], x["mode"], x["outcome"]) for x in log)
    counted = {(p.attributes["tool"], p.attributes["mode"], p.attributes["outcome"]): p.value
               for p in tel.points("interlock.tool.calls")}
    assert counted == dict(expected)
    hist = {(p.attributes["tool"], p.attributes["mode"], p.attributes["outcome"]): p for p in tel.points("interlock.tool.duration")}
    assert {k: p.count for k, p in hist.items()} == dict(expected)
    total_s = sum(p.sum for p in hist.values())
    assert total_s == pytest.approx(sum(x["duration_ms"] for x in log) / 1000.0)
    assert tel.unit("interlock.tool.duration") == "s"


def test_retries_are_separate_attempt_spans(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("""schema_version: 1
tools:
  - name: flaky.op
    description: fails once, then works
    risk: low
    idempotent: true
    retries: 2
    input_schema: {type: object, properties: {n: {type: integer}}}
""")
    plans = tmp_path / "plans.yaml"
    plans.write_text("schema_version: 1\nplans:\n  - plan_id: p\n    agent_id: a\n    steps:\n"
                     "      - {id: s, tool: flaky.op, args: {n: 1}, confidence: 0.9}\n")
    reg = ToolRegistry()
    tries = []

    @reg.tool("flaky.op")
    def flaky(n: int) -> dict:
        tries.append(n)
        if len(tries) == 1:
            raise TimeoutError("first try times out")
        return {"ok": True}

    tel = Telemetry()
    rt = Runtime.from_files(catalog, registry=reg, entry_points=False, live=True, fake_clock=True,
                            state_dir=None, observers=(tel.observer,))
    assert rt.run(plans).exit_code == 0
    attempts = sorted((s.attributes["interlock.attempt"], s.status.status_code, s.attributes.get("error.type"))
                      for s in tel.spans() if s.name == "execute_tool flaky.op")
    assert attempts == [(1, StatusCode.ERROR, "TimeoutError"), (2, StatusCode.UNSET, None)]


def test_error_type_reads_the_exception_name_or_falls_back_to_the_outcome() -> None:
    assert error_type("ValueError: bad", "failed") == "ValueError"
    assert error_type("pkg.mod.Boom: x", "failed") == "pkg.mod.Boom"
    assert error_type("executor failed: RuntimeError: x", "failed") == "failed"
    assert error_type(None, "lost") == "lost"


def test_without_opentelemetry_installed_it_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # import opentelemetry -> ImportError
    with pytest.raises(EnvironmentProblem, match=r"pip install 'interlock\[otel\]'"):
        OtelObserver()
    plans = tmp_path / "plans.yaml"
    plans.write_text("schema_version: 1\nplans: []\n")
    code = main(["run", "--catalog", str(EX / "fs/catalog.yaml"), "--plans", str(plans), "--out",
                 str(tmp_path / "run"), "--state-dir", str(tmp_path / "st"), "--otel", "--quiet"])
    assert code == 3
    assert "opentelemetry-api" in capsys.readouterr().err
    assert not (tmp_path / "run" / "orchestration_summary.json").exists()  # nothing ran
