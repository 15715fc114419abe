"""PrometheusObserver on real runs: scraped over HTTP on loopback, and read from the textfile."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from interlock.adapters.bootstrap import Runtime
from interlock.adapters.cli import EnvironmentProblem, main
from interlock.adapters.prom import PrometheusObserver
from interlock.adapters.registry import ToolRegistry

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
SEED_FILES = {"VERSION": "1.1.0\n", "README.md": "# Demo\n", "config.yaml": "retries: 3\n",
              "CHANGELOG.md": "# Changelog\n", "cache/build.tmp": "stale\n"}


def workspace(tmp: Path) -> Path:
    ws = tmp / "ws"
    for rel, text in SEED_FILES.items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(text)
    return ws


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of an exposition text."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode("utf-8")


def check_against_run(values: dict, run: Path) -> None:
    """Every counter, histogram count and gauge agrees with the run's own outputs."""
    log = jsonl(run / "tool_execution_log.jsonl")
    summary = json.loads((run / "orchestration_summary.json").read_text())
    expected = Counter((x["tool"], x["mode"], x["outcome"]) for x in log)
    calls = {tuple(v for _, v in labels): n for (name, labels), n in values.items()
             if name == "interlock_tool_calls_total"}
    # labels sort as mode, outcome, tool
    assert {(t, m, o): n for (m, o, t), n in calls.items()} == dict(expected)
    per_tool_mode = Counter((x["tool"], x["mode"]) for x in log)
    counts = {dict(labels)["tool"] + "|" + dict(labels)["mode"]: n for (name, labels), n in values.items()
              if name == "interlock_tool_duration_seconds_count"}
    assert counts == {f"{t}|{m}": n for (t, m), n in per_tool_mode.items()}
    assert values[("interlock_health_score", ())] == pytest.approx(summary["metrics"]["system_health_score"])
    assert values[("interlock_system_locked", ())] == (1 if summary["lock"]["state"] == "locked" else 0)
    assert values[("interlock_tool_calls_in_flight", ())] == 0
    kinds = Counter(a["kind"] for a in summary["anomalies"])
    assert {dict(labels)["kind"]: n for (name, labels), n in values.items()
            if name == "interlock_anomalies_total"} == dict(kinds)


def test_served_metrics_match_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    obs = PrometheusObserver()
    port = obs.serve(0)  # an ephemeral port on 127.0.0.1
    try:
        assert port > 0
        before = samples(scrape(port))
        assert before[("interlock_system_locked", ())] == 0
        assert before[("interlock_health_score", ())] != before[("interlock_health_score", ())]  # NaN: unknown yet
        monkeypatch.setenv("INTERLOCK_WORKSPACE", str(workspace(tmp_path)))
        rt = Runtime.from_files(EX / "fs/catalog.yaml", policy=EX / "fs/policy.yaml",
                                approvals=EX / "fs/approvals.yaml",
                                tools=[str(EX / "tools/fs_tools.py"), str(EX / "tools/release_tools.py")],
                                registry=ToolRegistry(), entry_points=False, fake_clock=True, seed=3,
                                state_dir=None, observers=(obs,))
        assert rt.run(EX / "fs/plans.yaml", out=tmp_path / "run").exit_code == 1
        text = scrape(port)
        assert text == obs.text()
        check_against_run(samples(text), tmp_path / "run")
    finally:
        obs.close()
    with pytest.raises(OSError):
        scrape(port)  # closed means closed


def test_textfile_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERLOCK_WORKSPACE", str(workspace(tmp_path)))
    prom = tmp_path / "textfile" / "interlock.prom"
    prom.parent.mkdir()
    code = main(["run", "--catalog", str(EX / "fs/catalog.yaml"), "--plans", str(EX / "fs/plans.yaml"),
                 "--policy", str(EX / "fs/policy.yaml"), "--approvals", str(EX / "fs/approvals.yaml"),
                 "--tools", str(EX / "tools/fs_tools.py"), "--tools", str(EX / "tools/release_tools.py"),
                 "--state-dir", str(tmp_path / "state"), "--out", str(tmp_path / "run"), "--fake-clock",
                 "--quiet", "--metrics-textfile", str(prom)])
    assert code == 1
    text = prom.read_text()
    assert "# TYPE interlock_tool_calls_total counter" in text
    assert "# TYPE interlock_tool_duration_seconds histogram" in text
    check_against_run(samples(text), tmp_path / "run")
    assert [p.name for p in prom.parent.iterdir()] == ["interlock.prom"]  # no temp file left behind


PROBE_TOOLS = '''
import os, urllib.request
from interlock.adapters.registry import tool

@tool("probe.scrape")
def scrape(n: int) -> dict:
    with urllib.request.urlopen(os.environ["PROBE_URL"], timeout=5) as resp:
        text = resp.read().decode("utf-8")
    return {"lines": [l for l in text.splitlines() if l.startswith("interlock_tool_calls")]}
'''

PROBE_CATALOG = """schema_version: 1
tools:
  - name: probe.scrape
    description: scrape interlock's own /metrics while the run is going
    risk: low
    idempotent: true
    input_schema: {type: object, required: [n], properties: {n: {type: integer}}}
"""

PROBE_PLANS = """schema_version: 1
plans:
  - plan_id: p
    agent_id: a
    steps:
      - {id: first, tool: probe.scrape, args: {n: 1}, confidence: 0.9}
      - {id: second, tool: probe.scrape, args: {n: 2}, confidence: 0.9, after: [first]}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serves_metrics_while_the_run_lasts(tmp_path: Path) -> None:
    (tmp_path / "probe_tools.py").write_text(PROBE_TOOLS)
    (tmp_path / "catalog.yaml").write_text(PROBE_CATALOG)
    (tmp_path / "plans.yaml").write_text(PROBE_PLANS)
    port = _free_port()
    env = {**os.environ, "PROBE_URL": f"http://127.0.0.1:{port}/metrics"}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "interlock"), "run", "--catalog", str(tmp_path / "catalog.yaml"),
         "--plans", str(tmp_path / "plans.yaml"), "--tools", str(tmp_path / "probe_tools.py"), "--live",
         "--state-dir", str(tmp_path / "state"), "--out", str(tmp_path / "run"), "--quiet",
         "--metrics-port", str(port)],
        env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    log = {x["call_id"]: x for x in jsonl(tmp_path / "run" / "tool_execution_log.jsonl")}
    first, second = log["p/first"]["result"]["lines"], log["p/second"]["result"]["lines"]
    assert log["p/first"]["mode"] == "live"
    assert "interlock_tool_calls_in_flight 1.0" in first  # itself, while it runs
    assert not [x for x in first if x.startswith("interlock_tool_calls_total{")]
    # the second call scraped the endpoint after the first one had been counted
    assert 'interlock_tool_calls_total{mode="live",outcome="succeeded",tool="probe.scrape"} 1.0' in second
    assert "interlock_tool_calls_in_flight 1.0" in second  # the first one is no longer in flight


def test_a_port_in_use_is_an_environment_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        plans = tmp_path / "plans.yaml"
        plans.write_text("schema_version: 1\nplans: []\n")
        code = main(["run", "--catalog", str(EX / "fs/catalog.yaml"), "--plans", str(plans), "--quiet",
                     "--out", str(tmp_path / "run"), "--state-dir", str(tmp_path / "st"),
                     "--metrics-port", str(port)])
    assert code == 3
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_a_locked_system_shows_as_locked(tmp_path: Path) -> None:
    from interlock.adapters.finish import open_store

    store = open_store(tmp_path / "state")
    store.set_system_state("locked", "maintenance window", "ops", 0.0)
    store.close()
    plans = tmp_path / "plans.yaml"
    plans.write_text("schema_version: 1\nplans:\n  - plan_id: p\n    agent_id: a\n    steps:\n"
                     "      - {id: r, tool: fs.read_file, args: {path: VERSION}, confidence: 0.9}\n")
    obs = PrometheusObserver()
    rt = Runtime.from_files(EX / "fs/catalog.yaml", registry=ToolRegistry(), entry_points=False, live=True,
                            fake_clock=True, state_dir=tmp_path / "state", observers=(obs,))
    rt.run(plans, out=tmp_path / "run")
    values = samples(obs.text())
    assert values[("interlock_system_locked", ())] == 1
    assert values[("interlock_tool_calls_total", (("mode", "mock"), ("outcome", "succeeded"),
                                                  ("tool", "fs.read_file")))] == 1  # locked: MOCK only
    check_against_run(values, tmp_path / "run")


def test_private_registries_never_collide() -> None:
    a, b = PrometheusObserver(), PrometheusObserver()
    assert a.registry is not b.registry


def test_without_prometheus_client_it_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(EnvironmentProblem, match=r"pip install 'interlock\[prometheus\]'"):
        PrometheusObserver()


def test_health_and_lock_gauges_are_live_during_a_run():
    """state_changed (after every committed step) updates the gauges, not only run_finished."""
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry

    from interlock.adapters.prom import PrometheusObserver
    from interlock.core.records import AnomalyRecord

    obs = PrometheusObserver(CollectorRegistry())
    an = AnomalyRecord("unsafe_escalation", 7, "lock", 0.6, 0.4, 1.0, 10, "drift")
    orch = SimpleNamespace(monitor=SimpleNamespace(health=lambda: 42.0), locked=True, anomalies=[an])
    obs.state_changed(orch)
    obs.state_changed(orch)  # the same anomaly is counted once
    text = obs.text()
    assert "interlock_health_score 42.0" in text and "interlock_system_locked 1.0" in text
    assert 'interlock_anomalies_total{kind="unsafe_escalation"} 1.0' in text


def test_one_observer_counts_each_runs_anomalies():
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry

    from interlock.adapters.prom import PrometheusObserver
    from interlock.core.records import AnomalyRecord

    obs = PrometheusObserver(CollectorRegistry())
    an = AnomalyRecord("high_conflict", 8, "reorder", 0.7, 0.5, 1.0, 10, "conflicts")
    for _ in range(2):  # two runs, each with its own orchestrator and one anomaly
        orch = SimpleNamespace(monitor=SimpleNamespace(health=lambda: None), locked=False, anomalies=[an])
        obs.state_changed(orch)
        obs.run_finished(orch)
    assert 'interlock_anomalies_total{kind="high_conflict"} 2.0' in obs.text()
