"""Stateful check of the monitor (SPEC section 7, I10, I13).

The model keeps every raw event and recomputes each metric by brute force over
the window (exact rational arithmetic, so it is the definition, not a second
copy of the running sums). Invariants: the monitor's metrics equal the model's,
rates/drift lie in [0, 1] and health in [0, 100] (I13), anomalies fire once per
episode and never below ``min_samples``, and ``replay_metrics`` fed the same
records as three separate streams equals the live metrics (I10).
"""

from __future__ import annotations

import math
from fractions import Fraction

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from interlock.core.model import AnomalyPolicy, DriftRule, HealthPolicy, Policy, RateRule, SuccessRule
from interlock.core.monitor import ANOMALY_KINDS, Monitor, replay_metrics
from interlock.core.records import ExecutionRecord, RollbackEvent

CALLS = [f"p/{i}" for i in range(6)]
EDGE_CONF = [0.0, 1.0, 0.5, 0.4, 0.1, 0.9, 0.75, 1e-300, 0.9999999999999999]
confidences = st.one_of(st.sampled_from(EDGE_CONF), st.floats(0.0, 1.0, allow_nan=False))
durations = st.one_of(st.sampled_from([0.0, 1.0, 1000.0, 1e7, 5e-324]),
                      st.floats(0.0, 1e7, allow_nan=False, allow_infinity=False))
thresholds = st.sampled_from([0.0, 0.1, 0.3, 0.4, 0.5, 0.6, 1.0])


def _mean(values: list[float]) -> float:
    return float(sum((Fraction(v) for v in values), Fraction(0)) / len(values))


class Model:
    """The definitions of docs/monitor.md, computed from scratch."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.execs: list[dict] = []  # every execution, in order
        self.rollbacks: list[dict] = []
        self.approvals: list[bool] = []
        self.conflicted: set[str] = set()

    def metrics(self) -> dict:
        w = self.policy.anomalies.window
        win = self.execs[-w:]
        apps = self.approvals[-w:]
        rolled = {r["call_id"] for r in self.rollbacks if r["outcome"] in ("rolled_back", "rollback_failed")}
        n = len(win)
        m: dict = {"samples": n}

        def rate(num: int, den: int) -> float | None:
            return min(1.0, num / den) if den else None

        m["tool_success_rate"] = rate(sum(e["outcome"] == "succeeded" for e in win), n)
        m["rollback_frequency"] = rate(len(rolled & {e["call_id"] for e in win}), n)
        m["conflict_rate"] = rate(sum(e["conflicted"] for e in win), n)
        m["live_execution_ratio"] = rate(sum(e["mode"] == "live" for e in win), n)
        real = [e for e in win if e["mode"] in ("dry_run", "live") and e["outcome"] in ("succeeded", "failed")]
        if real:
            m["confidence_drift"] = abs(_mean([e["confidence"] for e in real])
                                        - sum(e["outcome"] == "succeeded" for e in real) / len(real))
        else:
            m["confidence_drift"] = None
        m["approval_rate"] = rate(sum(apps), len(apps))
        if n:
            lat = sorted(e["duration_ms"] for e in win)
            mean = _mean(lat)
            m["execution_latency_ms"] = {"mean": mean,
                                         "p95": lat[math.ceil(Fraction(95, 100) * n) - 1]}
        else:
            mean = None
            m["execution_latency_ms"] = {"mean": None, "p95": None}
        budget = self.policy.health.latency_budget_ms
        comps = {
            "tool_success_rate": m["tool_success_rate"],
            "rollback_frequency": None if m["rollback_frequency"] is None else 1 - m["rollback_frequency"],
            "conflict_rate": None if m["conflict_rate"] is None else 1 - m["conflict_rate"],
            "confidence_drift": None if m["confidence_drift"] is None else 1 - m["confidence_drift"],
            "approval_rate": m["approval_rate"],
            "latency": None if mean is None else budget / (budget + mean),
        }
        known = {k: v for k, v in comps.items() if v is not None and self.policy.health.weights.get(k, 0) > 0}
        total = sum(self.policy.health.weights[k] for k in known)
        m["system_health_score"] = (100 * sum(self.policy.health.weights[k] * v for k, v in known.items()) / total
                                    if total else None)
        return m

    def active(self) -> set[str]:
        """Anomaly kinds whose condition holds now (with enough samples)."""
        m = self.metrics()
        a = self.policy.anomalies
        if m["samples"] < a.min_samples:
            return set()
        out = set()
        for kind, value, bad in (
            ("unsafe_escalation", m["confidence_drift"], lambda v: v > a.unsafe_escalation.drift_gt),
            ("repeated_failures", m["tool_success_rate"], lambda v: v < a.repeated_failures.success_lt),
            ("high_rollback", m["rollback_frequency"], lambda v: v > a.high_rollback.rate_gt),
            ("high_conflict", m["conflict_rate"], lambda v: v > a.high_conflict.rate_gt),
        ):
            if value is not None and bad(value):
                out.add(kind)
        return out


class MonitorMachine(RuleBasedStateMachine):
    @initialize(window=st.integers(1, 12), min_samples=st.integers(1, 8), drift_gt=thresholds,
                success_lt=thresholds, rollback_gt=thresholds, conflict_gt=thresholds,
                budget=st.sampled_from([1.0, 1000.0, 1e9]),
                weights=st.fixed_dictionaries({k: st.sampled_from([0.0, 0.5, 1.0, 3.0]) for k in (
                    "tool_success_rate", "rollback_frequency", "conflict_rate", "confidence_drift",
                    "approval_rate", "latency")}),
                conflicted=st.sets(st.sampled_from(CALLS)))
    def setup(self, window, min_samples, drift_gt, success_lt, rollback_gt, conflict_gt, budget, weights,
              conflicted):
        self.policy = Policy(
            anomalies=AnomalyPolicy(
                window=window, min_samples=min_samples,
                unsafe_escalation=DriftRule(drift_gt=drift_gt),
                repeated_failures=SuccessRule(success_lt=success_lt),
                high_rollback=RateRule(rate_gt=rollback_gt, severity=6, action="review"),
                high_conflict=RateRule(rate_gt=conflict_gt, severity=8, action="reorder"),
            ),
            health=HealthPolicy(weights=weights, latency_budget_ms=budget),
        )
        self.monitor = Monitor(self.policy)
        self.model = Model(self.policy)
        # Conflicts are found before anything runs: a call is conflicted for the whole run.
        self.model.conflicted = set(conflicted)
        self.prev_active: set[str] = set()
        self.events = 0
        self.time = 0.0

    def _check_fired(self, fired) -> None:
        """Fires exactly the kinds that became active with this event (one per episode)."""
        now = self.model.active()
        kinds = [a.kind for a in fired]
        assert kinds == [k for k in ANOMALY_KINDS if k in now - self.prev_active]
        for a in fired:
            assert a.samples >= self.policy.anomalies.min_samples
            assert a.time == self.time
            rule = getattr(self.policy.anomalies, a.kind)
            assert (a.severity, a.action) == (rule.severity, rule.action)
        self.prev_active = now
        self.events += 1

    @rule(call=st.sampled_from(CALLS), mode=st.sampled_from(["mock", "dry_run", "live"]),
          outcome=st.sampled_from(["succeeded", "failed", "lost"]), confidence=confidences,
          duration=durations)
    def execute(self, call, mode, outcome, confidence, duration):
        self.time += 1.0
        rec = ExecutionRecord(
            call_id=call, plan_id="p", agent_id="a", tool="t", mode=mode, risk="low",
            confidence=confidence, attempt=1, start=self.time - duration / 1000, end=self.time,
            duration_ms=duration, outcome=outcome, error=None, result=None, decision={},
            idempotency_key="k")
        line = attrs.asdict(rec)
        flag = call in self.model.conflicted
        line["conflicted"] = flag
        self.model.execs.append(line)
        self._check_fired(self.monitor.observe_execution(rec, conflicted=flag))

    @rule(call=st.sampled_from(CALLS),
          outcome=st.sampled_from(["rolled_back", "rollback_failed", "skipped_irreversible"]))
    def rollback(self, call, outcome):
        self.time += 1.0
        ev = RollbackEvent(call_id=call, plan_id="p", tool="undo", args={}, start=self.time,
                           end=None if outcome == "skipped_irreversible" else self.time,
                           outcome=outcome, error=None, trigger_call="p/0")
        self.model.rollbacks.append(attrs.asdict(ev))
        self._check_fired(self.monitor.observe_rollback(ev))

    @rule(granted=st.booleans())
    def approval(self, granted):
        self.time += 1.0
        self.model.approvals.append(granted)
        self._check_fired(self.monitor.observe_approval(granted, self.time))

    @invariant()
    def metrics_match_the_model(self):
        got = self.monitor.metrics()
        want = self.model.metrics()
        assert got["samples"] == want["samples"]
        for key in ("tool_success_rate", "rollback_frequency", "conflict_rate", "live_execution_ratio",
                    "confidence_drift", "approval_rate", "system_health_score"):
            _close(got[key], want[key], key)
            assert (got[key] is None) == (key in got["null_reasons"]), key
        for key in ("mean", "p95"):
            _close(got["execution_latency_ms"][key], want["execution_latency_ms"][key], key)
        assert (got["execution_latency_ms"]["mean"] is None) == ("execution_latency_ms" in got["null_reasons"])

    @invariant()
    def i13_ranges(self):
        m = self.monitor.metrics()
        for key in ("tool_success_rate", "rollback_frequency", "conflict_rate", "live_execution_ratio",
                    "confidence_drift", "approval_rate"):
            assert m[key] is None or 0.0 <= m[key] <= 1.0, key
        assert m["system_health_score"] is None or 0.0 <= m["system_health_score"] <= 100.0
        for h in self.monitor.history():
            assert h["health_score"] is None or 0.0 <= h["health_score"] <= 100.0

    @invariant()
    def history_has_one_entry_per_event(self):
        hist = self.monitor.history()
        assert len(hist) == self.events
        if hist:
            assert hist[-1] == {"time": self.time, "health_score": self.monitor.health()}

    @invariant()
    def replay_equals_live(self):
        execs = [{k: v for k, v in e.items() if k != "conflicted"} for e in self.model.execs]
        replayed = replay_metrics(execs, self.model.rollbacks, self.model.approvals,
                                  set(self.model.conflicted), self.policy)
        assert replayed == self.monitor.metrics()


def _close(got, want, key):
    if want is None:
        assert got is None, key
    else:
        assert got is not None and abs(got - want) <= 1e-9 * max(1.0, abs(want)), (key, got, want)


TestMonitorStateful = MonitorMachine.TestCase
