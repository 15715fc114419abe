"""The monitor: eight metrics, four anomalies and a 0–100 health score (SPEC section 7).

Sans-I/O like the rest of the core: the orchestrator feeds it records in event
order and gets anomaly records back. Three count-based sliding windows of
``policy.anomalies.window`` entries, one per stream:

- executions (every attempt, all modes);
- rollbacks, attributed to executions by ``call_id`` (the set of rolled-back
  calls; see ``rollback_frequency``);
- approval answers.

Each metric is a function of the last W executions, the set of rolled-back
calls and the last W approval answers, never of how the three streams
interleave. That is what lets ``replay_metrics`` recompute the metrics of a
run from its three logs exactly (I10). docs/monitor.md is the user-facing
account of every definition here.

Per event the work is O(1) running sums plus one ``bisect`` insort/removal in
a sorted copy of the window's latencies for the p95 (O(log W) search, O(W)
memmove; W <= 10k keeps that memmove in the microseconds). Float sums are kept
exactly (floats as scaled integers), so a long run never drifts and a replay
equals the live values bit for bit.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, deque
from typing import Any, Iterable, NamedTuple

from interlock.core.model import Policy
from interlock.core.records import AnomalyRecord, ExecutionRecord, RollbackEvent

__all__ = [
    "ANOMALY_KINDS", "METRIC_NAMES", "HEALTH_COMPONENTS", "Monitor", "replay_metrics",
]

#: The scalar metrics, in output order (``execution_latency_ms`` is the
#: {"mean", "p95"} pair and comes after them).
METRIC_NAMES = (
    "tool_success_rate", "rollback_frequency", "conflict_rate", "live_execution_ratio",
    "confidence_drift", "approval_rate", "system_health_score",
)
#: The anomaly kinds, in the order they are evaluated and reported.
ANOMALY_KINDS = ("unsafe_escalation", "repeated_failures", "high_rollback", "high_conflict")
#: Health weight key -> how the component score in [0, 1] is made from the metrics.
HEALTH_COMPONENTS = (
    "tool_success_rate", "rollback_frequency", "conflict_rate", "confidence_drift",
    "approval_rate", "latency",
)

#: Outcomes of real executions: what a confidence can be checked against.
_REAL_MODES = frozenset({"dry_run", "live"})
_KNOWN_OUTCOMES = frozenset({"succeeded", "failed"})
#: Rollback events that are rollbacks (``skipped_irreversible`` ran nothing).
_ROLLBACK_OUTCOMES = frozenset({"rolled_back", "rollback_failed"})

# Null reasons (docs/monitor.md, "Null semantics").
NO_EXECUTIONS = "no executions in the window"
NO_REAL_OUTCOMES = "no dry_run or live execution with a known outcome in the window"
NO_APPROVALS = "no approval requested in the window"
BAD_DURATION = "a duration in the window is NaN, infinite or negative"
BAD_CONFIDENCE = "a confidence in the window is NaN or outside [0, 1]"
NO_HEALTH = "no weighted health component is known"


# --------------------------------------------------------------------------
# Exact running sums
# --------------------------------------------------------------------------

#: Every finite double is an integer multiple of 2**-1074.
_SHIFT = 1074


def _scaled(x: float) -> int:
    """``x * 2**1074`` as an exact integer (x finite)."""
    num, den = x.as_integer_ratio()
    return num << (_SHIFT - (den.bit_length() - 1))


def _mean(scaled_sum: int, n: int) -> float:
    """Correctly rounded mean of the values whose scaled sum is given (n > 0)."""
    return scaled_sum / (n << _SHIFT)


# --------------------------------------------------------------------------
# Window entries
# --------------------------------------------------------------------------


class _Entry(NamedTuple):
    """What the monitor keeps of one execution attempt."""

    call_id: str
    succeeded: bool
    live: bool
    conflicted: bool
    latency: float  # finite, >= 0 (else latency_ok is False)
    latency_ok: bool
    real: bool  # dry_run/live with outcome succeeded|failed: checks the confidence
    confidence: float
    confidence_ok: bool


def _entry(call_id: str, mode: str, outcome: str, confidence: Any, duration_ms: Any,
           conflicted: bool) -> _Entry:
    lat_ok = _finite_number(duration_ms) and duration_ms >= 0
    conf_ok = _finite_number(confidence) and 0.0 <= confidence <= 1.0
    return _Entry(
        call_id=call_id,
        succeeded=outcome == "succeeded",
        live=mode == "live",
        conflicted=bool(conflicted),
        latency=float(duration_ms) if lat_ok else 0.0,
        latency_ok=lat_ok,
        real=mode in _REAL_MODES and outcome in _KNOWN_OUTCOMES,
        confidence=float(confidence) if conf_ok else 0.0,
        confidence_ok=conf_ok,
    )


def _finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# --------------------------------------------------------------------------
# The monitor
# --------------------------------------------------------------------------


class Monitor:
    """Sliding-window metrics, anomalies with hysteresis, and a health history.

    Mutable, single-threaded, owned by one orchestrator. Feed it in event order.
    """

    __slots__ = (
        "policy", "_window", "_execs", "_n_succ", "_n_live", "_n_conflicted",
        "_lat_sum", "_lat_bad", "_lat_sorted", "_n_real", "_n_real_succ", "_conf_sum",
        "_conf_bad", "_calls_in_window", "_rolled", "_n_rolled_in_window", "_approvals",
        "_n_granted", "_armed", "_history",
    )

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._window = max(1, int(policy.anomalies.window))
        # Executions.
        self._execs: deque[_Entry] = deque()
        self._n_succ = 0
        self._n_live = 0
        self._n_conflicted = 0
        self._lat_sum = 0
        self._lat_bad = 0
        self._lat_sorted: list[float] = []
        self._n_real = 0
        self._n_real_succ = 0
        self._conf_sum = 0  # over real entries with a valid confidence
        self._conf_bad = 0  # real entries with an invalid confidence
        # Rollbacks, attributed to executions by call id.
        self._calls_in_window: Counter[str] = Counter()
        self._rolled: set[str] = set()
        self._n_rolled_in_window = 0
        # Approvals.
        self._approvals: deque[bool] = deque()
        self._n_granted = 0
        # Anomaly hysteresis: armed until it fires, re-armed once the condition is false.
        self._armed = {kind: True for kind in ANOMALY_KINDS}
        self._history: list[dict[str, Any]] = []

    # -- events ------------------------------------------------------------

    def observe_execution(self, rec: ExecutionRecord, *, conflicted: bool) -> list[AnomalyRecord]:
        """One finished execution attempt (any mode, any outcome)."""
        self._add_execution(_entry(rec.call_id, rec.mode, rec.outcome, rec.confidence,
                                   rec.duration_ms, conflicted))
        return self._after_event(rec.end)

    def observe_rollback(self, ev: RollbackEvent) -> list[AnomalyRecord]:
        """One rollback attempt. ``skipped_irreversible`` is listed, not counted."""
        self._add_rollback(ev.call_id, ev.outcome)
        return self._after_event(ev.end if ev.end is not None else ev.start)

    def observe_approval(self, granted: bool, time: float) -> list[AnomalyRecord]:
        """One answered LIVE approval request (a timeout or gate error is a denial)."""
        self._add_approval(granted)
        return self._after_event(time)

    # -- stream updates ----------------------------------------------------

    def _add_execution(self, e: _Entry) -> None:
        self._execs.append(e)
        self._count(e, +1)
        if len(self._execs) > self._window:
            self._count(self._execs.popleft(), -1)

    def _count(self, e: _Entry, sign: int) -> None:
        self._n_succ += sign * e.succeeded
        self._n_live += sign * e.live
        self._n_conflicted += sign * e.conflicted
        if e.latency_ok:
            self._lat_sum += sign * _scaled(e.latency)
            if sign > 0:
                bisect.insort(self._lat_sorted, e.latency)
            else:
                del self._lat_sorted[bisect.bisect_left(self._lat_sorted, e.latency)]
        else:
            self._lat_bad += sign
        if e.real:
            self._n_real += sign
            self._n_real_succ += sign * e.succeeded
            if e.confidence_ok:
                self._conf_sum += sign * _scaled(e.confidence)
            else:
                self._conf_bad += sign
        before = self._calls_in_window[e.call_id]
        after = before + sign
        if after:
            self._calls_in_window[e.call_id] = after
        else:
            del self._calls_in_window[e.call_id]
        if e.call_id in self._rolled and (before == 0) != (after == 0):
            self._n_rolled_in_window += sign

    def _add_rollback(self, call_id: str, outcome: str) -> None:
        if outcome not in _ROLLBACK_OUTCOMES or call_id in self._rolled:
            return
        self._rolled.add(call_id)
        if self._calls_in_window.get(call_id, 0) > 0:
            self._n_rolled_in_window += 1

    def _add_approval(self, granted: bool) -> None:
        self._approvals.append(bool(granted))
        self._n_granted += bool(granted)
        if len(self._approvals) > self._window:
            self._n_granted -= self._approvals.popleft()

    # -- metrics -----------------------------------------------------------

    @property
    def samples(self) -> int:
        """Executions in the window: what ``min_samples`` is compared with."""
        return len(self._execs)

    def metrics(self) -> dict[str, Any]:
        """The eight metrics (docs/monitor.md); null with a reason where unknown."""
        reasons: dict[str, str] = {}
        n = len(self._execs)
        out: dict[str, Any] = {}

        def rate(name: str, num: int, den: int, why: str) -> None:
            if den > 0:
                out[name] = min(1.0, max(0.0, num / den))
            else:
                out[name] = None
                reasons[name] = why

        rate("tool_success_rate", self._n_succ, n, NO_EXECUTIONS)
        rate("rollback_frequency", self._n_rolled_in_window, n, NO_EXECUTIONS)
        rate("conflict_rate", self._n_conflicted, n, NO_EXECUTIONS)
        rate("live_execution_ratio", self._n_live, n, NO_EXECUTIONS)
        if self._n_real == 0:
            out["confidence_drift"] = None
            reasons["confidence_drift"] = NO_REAL_OUTCOMES
        elif self._conf_bad:
            out["confidence_drift"] = None
            reasons["confidence_drift"] = BAD_CONFIDENCE
        else:
            drift = abs(_mean(self._conf_sum, self._n_real) - self._n_real_succ / self._n_real)
            out["confidence_drift"] = min(1.0, drift)
        rate("approval_rate", self._n_granted, len(self._approvals), NO_APPROVALS)

        latency: dict[str, float | None] = {"mean": None, "p95": None}
        if n == 0:
            reasons["execution_latency_ms"] = NO_EXECUTIONS
        elif self._lat_bad:
            reasons["execution_latency_ms"] = BAD_DURATION
        else:
            latency["mean"] = _mean(self._lat_sum, n)
            latency["p95"] = self._lat_sorted[_p95_index(n)]

        health, why = health_score(out, latency["mean"], self.policy)
        out["system_health_score"] = health
        if why:
            reasons["system_health_score"] = why
        ordered: dict[str, Any] = {name: out[name] for name in METRIC_NAMES}
        ordered["execution_latency_ms"] = latency
        ordered["samples"] = n
        ordered["null_reasons"] = reasons
        return ordered

    def health(self) -> float | None:
        """The health score, 0–100, or None when nothing is known."""
        return self.metrics()["system_health_score"]

    def history(self) -> list[dict[str, Any]]:
        """``{"time", "health_score"}`` after each observation, in order (for the report)."""
        return list(self._history)

    # -- anomalies ---------------------------------------------------------

    def _after_event(self, time: float) -> list[AnomalyRecord]:
        m = self.metrics()
        self._history.append({"time": time, "health_score": m["system_health_score"]})
        fired: list[AnomalyRecord] = []
        for kind, value, threshold, breached in _conditions(m, self.policy):
            active = breached and m["samples"] >= self.policy.anomalies.min_samples
            if not active:
                self._armed[kind] = True  # the episode is over (or never began)
                continue
            if not self._armed[kind]:
                continue  # still the same episode: it fired once already
            self._armed[kind] = False
            rule = getattr(self.policy.anomalies, kind)
            fired.append(AnomalyRecord(
                kind=kind, severity=rule.severity, action=rule.action, value=value,
                threshold=threshold, time=time, samples=m["samples"],
                message=_MESSAGES[kind].format(value=value, threshold=threshold, n=m["samples"]),
            ))
        return fired


_MESSAGES = {
    "unsafe_escalation": "confidence drift {value:.3f} > {threshold:.3f} over the last {n} executions: "
                         "confidences no longer predict outcomes",
    "repeated_failures": "success rate {value:.3f} < {threshold:.3f} over the last {n} executions",
    "high_rollback": "rollback frequency {value:.3f} > {threshold:.3f} over the last {n} executions",
    "high_conflict": "conflict rate {value:.3f} > {threshold:.3f} over the last {n} executions",
}


def _conditions(m: dict[str, Any], policy: Policy) -> Iterable[tuple[str, float, float, bool]]:
    """(kind, value, threshold, breached) per anomaly; a null metric never breaches."""
    a = policy.anomalies
    rows = (
        ("unsafe_escalation", m["confidence_drift"], a.unsafe_escalation.drift_gt, False),
        ("repeated_failures", m["tool_success_rate"], a.repeated_failures.success_lt, True),
        ("high_rollback", m["rollback_frequency"], a.high_rollback.rate_gt, False),
        ("high_conflict", m["conflict_rate"], a.high_conflict.rate_gt, False),
    )
    for kind, value, threshold, below in rows:
        if value is None:
            yield kind, math.nan, threshold, False
        else:
            yield kind, value, threshold, (value < threshold) if below else (value > threshold)


def _p95_index(n: int) -> int:
    """Nearest-rank p95: the ceil(0.95 n)-th smallest value (0-based index)."""
    return (95 * n + 99) // 100 - 1


# --------------------------------------------------------------------------
# Health
# --------------------------------------------------------------------------


def health_components(m: dict[str, Any], latency_mean: float | None,
                      policy: Policy) -> dict[str, float | None]:
    """Each component score in [0, 1] (1 is healthy), None when unknown."""

    def inv(x: float | None) -> float | None:
        return None if x is None else 1.0 - x

    budget = policy.health.latency_budget_ms
    latency: float | None = None
    if latency_mean is not None and _finite_number(budget) and budget > 0:
        latency = budget / (budget + latency_mean)
    return {
        "tool_success_rate": m["tool_success_rate"],
        "rollback_frequency": inv(m["rollback_frequency"]),
        "conflict_rate": inv(m["conflict_rate"]),
        "confidence_drift": inv(m["confidence_drift"]),
        "approval_rate": m["approval_rate"],
        "latency": latency,
    }


def health_score(m: dict[str, Any], latency_mean: float | None,
                 policy: Policy) -> tuple[float | None, str | None]:
    """100 × the weighted mean of the known components (weights renormalised)."""
    comps = health_components(m, latency_mean, policy)
    weights = policy.health.weights
    num = 0.0
    den = 0.0
    for name in HEALTH_COMPONENTS:
        w = weights.get(name, 0.0)
        score = comps[name]
        if score is None or not _finite_number(w) or w <= 0:
            continue
        num += w * score
        den += w
    if den <= 0:
        return None, NO_HEALTH
    return min(100.0, max(0.0, 100.0 * num / den)), None


# --------------------------------------------------------------------------
# Replay
# --------------------------------------------------------------------------


def replay_metrics(
    executions: list[dict[str, Any]],
    rollbacks: list[dict[str, Any]],
    approvals: list[bool],
    conflicted_calls: set[str],
    policy: Policy,
) -> dict[str, Any]:
    """The metrics recomputed from a run's logs (I10).

    ``executions`` and ``rollbacks`` are the lines of tool_execution_log.jsonl
    and rollback_events.jsonl (field names as ExecutionRecord/RollbackEvent),
    in file order; ``approvals`` the LIVE approval answers in order;
    ``conflicted_calls`` the call ids named by any conflict record. Equal to
    the live ``Monitor.metrics()`` because no metric depends on how the three
    streams interleave.
    """
    mon = Monitor(policy)
    for d in executions:
        call = d["call_id"]
        mon._add_execution(_entry(call, d["mode"], d["outcome"], d["confidence"],
                                  d["duration_ms"], call in conflicted_calls))
    for d in rollbacks:
        mon._add_rollback(d["call_id"], d["outcome"])
    for granted in approvals:
        mon._add_approval(granted)
    return mon.metrics()
