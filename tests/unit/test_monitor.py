"""The monitor's metrics, null semantics, health formula and anomalies (docs/monitor.md)."""

from __future__ import annotations

import math

import attrs
import pytest

from interlock.core.model import AnomalyPolicy, HealthPolicy, Policy
from interlock.core.monitor import (
    BAD_CONFIDENCE, BAD_DURATION, NO_APPROVALS, NO_EXECUTIONS, NO_HEALTH, NO_REAL_OUTCOMES, Monitor,
    replay_metrics,
)
from interlock.core.records import ExecutionRecord, RollbackEvent


def ex(call="p/a", *, mode="live", outcome="succeeded", confidence=0.9, duration=10.0, end=1.0):
    return ExecutionRecord(
        call_id=call, plan_id="p", agent_id="a", tool="t", mode=mode, risk="low",
        confidence=confidence, attempt=1, start=end, end=end, duration_ms=duration,
        outcome=outcome, error=None, result=None, decision={}, idempotency_key="k")


def rb(call, outcome="rolled_back", end=2.0):
    return RollbackEvent(call_id=call, plan_id="p", tool="undo", args={}, start=end, end=end,
                         outcome=outcome, error=None, trigger_call="p/x")


def policy(window=50, min_samples=10, **health):
    return Policy(anomalies=AnomalyPolicy(window=window, min_samples=min_samples),
                  health=HealthPolicy(**health) if health else HealthPolicy())


def test_empty_monitor_is_all_null_with_reasons():
    m = Monitor(Policy()).metrics()
    assert set(m) == {"tool_success_rate", "rollback_frequency", "conflict_rate", "live_execution_ratio",
                      "confidence_drift", "approval_rate", "system_health_score", "execution_latency_ms",
                      "samples", "null_reasons"}
    assert m["samples"] == 0
    assert m["execution_latency_ms"] == {"mean": None, "p95": None}
    assert m["null_reasons"] == {
        "tool_success_rate": NO_EXECUTIONS, "rollback_frequency": NO_EXECUTIONS,
        "conflict_rate": NO_EXECUTIONS, "live_execution_ratio": NO_EXECUTIONS,
        "confidence_drift": NO_REAL_OUTCOMES, "approval_rate": NO_APPROVALS,
        "execution_latency_ms": NO_EXECUTIONS, "system_health_score": NO_HEALTH,
    }
    assert Monitor(Policy()).health() is None


def test_metric_definitions_on_a_small_run():
    mon = Monitor(Policy())
    mon.observe_execution(ex("p/a", mode="live", outcome="succeeded", confidence=0.9, duration=10), conflicted=True)
    mon.observe_execution(ex("p/b", mode="dry_run", outcome="failed", confidence=0.7, duration=30), conflicted=False)
    mon.observe_execution(ex("p/c", mode="mock", outcome="succeeded", confidence=0.1, duration=20), conflicted=False)
    mon.observe_execution(ex("p/d", mode="live", outcome="lost", confidence=0.2, duration=40), conflicted=False)
    mon.observe_rollback(rb("p/a"))
    mon.observe_approval(True, 3.0)
    mon.observe_approval(False, 4.0)
    m = mon.metrics()
    assert m["samples"] == 4
    assert m["tool_success_rate"] == 0.5  # a, c of four attempts; lost is not a success
    assert m["rollback_frequency"] == 0.25
    assert m["conflict_rate"] == 0.25
    assert m["live_execution_ratio"] == 0.5
    # Real outcomes: a (0.9, ok) and b (0.7, failed); mock c and lost d are not.
    assert m["confidence_drift"] == pytest.approx(abs(0.8 - 0.5))
    assert m["approval_rate"] == 0.5
    assert m["execution_latency_ms"] == {"mean": 25.0, "p95": 40.0}
    assert m["null_reasons"] == {}


def test_health_is_the_documented_weighted_average_renormalised_over_known_components():
    mon = Monitor(policy(latency_budget_ms=100.0))
    mon.observe_execution(ex(confidence=1.0, duration=100.0), conflicted=False)
    # success 1, rollback 0, conflict 0, drift 0, approval unknown, latency 100/(100+100) = 0.5
    w = HealthPolicy().weights
    known = ["tool_success_rate", "rollback_frequency", "conflict_rate", "confidence_drift", "latency"]
    expected = 100 * (sum(w[k] for k in known) - 0.5 * w["latency"]) / sum(w[k] for k in known)
    assert mon.health() == pytest.approx(expected)
    assert "approval_rate" in mon.metrics()["null_reasons"]


def test_health_leaves_out_zero_weights_and_is_null_when_only_those_are_known():
    only_approval = {k: 0.0 for k in HealthPolicy().weights} | {"approval_rate": 1.0}
    mon = Monitor(policy(weights=only_approval))
    mon.observe_execution(ex(), conflicted=False)
    assert mon.health() is None
    assert mon.metrics()["null_reasons"]["system_health_score"] == NO_HEALTH
    mon.observe_approval(False, 2.0)
    assert mon.health() == 0.0


def test_a_zero_latency_budget_leaves_latency_out_instead_of_dividing_by_zero():
    mon = Monitor(policy(latency_budget_ms=0.0))
    mon.observe_execution(ex(duration=0.0, confidence=1.0), conflicted=False)
    assert mon.health() == 100.0


def test_mock_only_window_has_no_drift_but_a_health():
    mon = Monitor(Policy())
    mon.observe_execution(ex(mode="mock"), conflicted=False)
    m = mon.metrics()
    assert m["confidence_drift"] is None
    assert m["null_reasons"]["confidence_drift"] == NO_REAL_OUTCOMES
    assert m["system_health_score"] is not None


def test_nan_duration_and_confidence_give_null_not_nan_and_recover_when_they_leave_the_window():
    mon = Monitor(policy(window=2))
    mon.observe_execution(ex("p/a", duration=math.nan, confidence=math.nan), conflicted=False)
    m = mon.metrics()
    assert m["execution_latency_ms"] == {"mean": None, "p95": None}
    assert m["null_reasons"]["execution_latency_ms"] == BAD_DURATION
    assert m["confidence_drift"] is None and m["null_reasons"]["confidence_drift"] == BAD_CONFIDENCE
    mon.observe_execution(ex("p/b", duration=-1.0), conflicted=False)  # negative: invalid too
    assert mon.metrics()["execution_latency_ms"]["mean"] is None
    mon.observe_execution(ex("p/c", duration=4.0), conflicted=False)
    mon.observe_execution(ex("p/d", duration=6.0), conflicted=False)
    m = mon.metrics()
    assert m["execution_latency_ms"] == {"mean": 5.0, "p95": 6.0}
    assert m["confidence_drift"] == pytest.approx(0.1)
    assert m["null_reasons"] == {"approval_rate": NO_APPROVALS}


def test_p95_is_nearest_rank_over_the_window():
    mon = Monitor(policy(window=20))
    for i in range(1, 41):  # only 21..40 remain
        mon.observe_execution(ex(f"p/{i}", duration=float(i)), conflicted=False)
    lat = mon.metrics()["execution_latency_ms"]
    assert lat == {"mean": 30.5, "p95": 39.0}  # ceil(0.95 * 20) = 19th of 21..40


def test_window_is_count_based_per_stream():
    mon = Monitor(policy(window=3))
    for i in range(3):
        mon.observe_execution(ex(f"p/{i}", outcome="failed"), conflicted=True)
    for i in range(3, 6):
        mon.observe_execution(ex(f"p/{i}", outcome="succeeded"), conflicted=False)
    for granted in (False, False, True, True, True):
        mon.observe_approval(granted, 1.0)
    m = mon.metrics()
    assert (m["samples"], m["tool_success_rate"], m["conflict_rate"], m["approval_rate"]) == (3, 1.0, 0.0, 1.0)


def test_rollbacks_count_against_the_executions_in_the_window_of_the_call():
    mon = Monitor(policy(window=2))
    mon.observe_rollback(rb("p/a"))  # before its execution: counted once the execution is in the window
    assert mon.metrics()["rollback_frequency"] is None
    mon.observe_execution(ex("p/a"), conflicted=False)
    assert mon.metrics()["rollback_frequency"] == 1.0
    mon.observe_execution(ex("p/a"), conflicted=False)  # a second attempt of the same call: one call
    assert mon.metrics()["rollback_frequency"] == 0.5
    mon.observe_rollback(rb("p/a", outcome="rollback_failed"))  # same call again: still one
    mon.observe_rollback(rb("p/b", outcome="skipped_irreversible"))  # nothing was run: not counted
    mon.observe_execution(ex("p/b"), conflicted=False)
    assert mon.metrics()["rollback_frequency"] == 0.5
    mon.observe_execution(ex("p/c"), conflicted=False)  # p/a left the window
    assert mon.metrics()["rollback_frequency"] == 0.0


def test_metrics_do_not_depend_on_how_streams_interleave():
    execs = [ex(f"p/{i % 4}", mode=["live", "dry_run", "mock"][i % 3], outcome=["succeeded", "failed"][i % 2],
                confidence=i / 10, duration=float(i)) for i in range(10)]
    rbs = [rb("p/1"), rb("p/3")]
    apps = [True, False, True]
    pol = policy(window=4)
    a = Monitor(pol)
    for e in execs:
        a.observe_execution(e, conflicted=e.call_id == "p/2")
    for r in rbs:
        a.observe_rollback(r)
    for g in apps:
        a.observe_approval(g, 0.0)
    b = Monitor(pol)
    b.observe_rollback(rbs[0])
    b.observe_approval(apps[0], 0.0)
    for i, e in enumerate(execs):
        b.observe_execution(e, conflicted=e.call_id == "p/2")
        if i == 5:
            b.observe_rollback(rbs[1])
            b.observe_approval(apps[1], 0.0)
    b.observe_approval(apps[2], 0.0)
    assert a.metrics() == b.metrics()
    lines = [attrs.asdict(e) for e in execs]
    assert replay_metrics(lines, [attrs.asdict(r) for r in rbs], apps, {"p/2"}, pol) == a.metrics()


def test_anomaly_fires_once_per_episode_and_rearms_after_recovery():
    mon = Monitor(policy(window=4, min_samples=4))
    fired = []
    outcomes = ["failed"] * 3 + ["failed"] * 3 + ["succeeded"] * 4 + ["failed"] * 4
    for i, o in enumerate(outcomes):
        fired.append([a.kind for a in mon.observe_execution(ex(f"p/{i}", mode="mock", outcome=o, end=float(i)),
                                                            conflicted=False)])
    # Fires at the 4th execution (min_samples), stays silent while it persists,
    # re-arms once the rate recovers, fires again in the second episode.
    assert [i for i, f in enumerate(fired) if "repeated_failures" in f] == [3, 12]


def test_no_anomaly_below_min_samples():
    mon = Monitor(policy(window=50, min_samples=10))
    for i in range(9):
        assert mon.observe_execution(ex(f"p/{i}", outcome="failed", confidence=1.0), conflicted=True) == []
    got = mon.observe_execution(ex("p/9", outcome="failed", confidence=1.0, end=9.0), conflicted=True)
    assert [a.kind for a in got] == ["unsafe_escalation", "repeated_failures", "high_conflict"]
    esc = got[0]
    rule = Policy().anomalies.unsafe_escalation
    assert (esc.severity, esc.action, esc.value, esc.threshold, esc.time, esc.samples) == (
        rule.severity, "lock", 1.0, rule.drift_gt, 9.0, 10)
    assert "drift" in esc.message


def test_high_rollback_fires_on_the_rollback_event():
    mon = Monitor(policy(window=10, min_samples=2))
    mon.observe_execution(ex("p/a"), conflicted=False)
    mon.observe_execution(ex("p/b"), conflicted=False)
    got = mon.observe_rollback(rb("p/a", end=7.0))
    assert [(a.kind, a.value, a.time) for a in got] == [("high_rollback", 0.5, 7.0)]


def test_history_records_health_after_each_observation():
    mon = Monitor(Policy())
    mon.observe_approval(True, 1.0)
    mon.observe_execution(ex(end=2.0), conflicted=False)
    mon.observe_rollback(RollbackEvent("p/x", "p", "u", {}, 3.0, None, "skipped_irreversible", None, "p/y"))
    hist = mon.history()
    assert [h["time"] for h in hist] == [1.0, 2.0, 3.0]
    assert hist[0]["health_score"] == 100.0  # only approvals known: one granted
    assert hist[-1]["health_score"] == mon.health()
