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
from typing import Any, NamedTuple

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
    latency_scaled: int  # exact, for the running sum
    real: bool  # dry_run/live with outcome succeeded|failed: checks the confidence
    confidence_ok: bool
    confidence_scaled: int


def _entry(call_id: str, mode: str, outcome: str, confidence: Any, duration_ms: Any,
           conflicted: bool) -> _Entry:
    lat_ok = _finite_number(duration_ms) and duration_ms >= 0
    conf_ok = _finite_number(confidence) and 0.0 <= confidence <= 1.0
    latency = float(duration_ms) if lat_ok else 0.0
    return _Entry(
        call_id=call_id,
        succeeded=outcome == "succeeded",
        live=mode == "live",
        conflicted=bool(conflicted),
        latency=latency,
        latency_ok=lat_ok,
        latency_scaled=_scaled(latency),
        real=mode in _REAL_MODES and outcome in _KNOWN_OUTCOMES,
        confidence_ok=conf_ok,
        confidence_scaled=_scaled(float(confidence)) if conf_ok else 0,
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
        "_n_granted", "_armed", "_history", "_health_weights",
    )

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._window = max(1, int(policy.anomalies.window))
        self._health_weights = _weights(policy)
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
            self._lat_sum += sign * e.latency_scaled
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
                self._conf_sum += sign * e.confidence_scaled
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

    def _values(self) -> _Values:
        """The metric values from the running sums, None where unknown. O(1)."""
        n = len(self._execs)
        napp = len(self._approvals)
        drift = None
        if self._n_real and not self._conf_bad:
            drift = min(1.0, abs(_mean(self._conf_sum, self._n_real) - self._n_real_succ / self._n_real))
        lat_mean = p95 = None
        if n and not self._lat_bad:
            lat_mean = _mean(self._lat_sum, n)
            p95 = self._lat_sorted[_p95_index(n)]
        return _Values(
            n=n,
            tool_success_rate=min(1.0, self._n_succ / n) if n else None,
            rollback_frequency=min(1.0, self._n_rolled_in_window / n) if n else None,
            conflict_rate=min(1.0, self._n_conflicted / n) if n else None,
            live_execution_ratio=min(1.0, self._n_live / n) if n else None,
            confidence_drift=drift,
            approval_rate=min(1.0, self._n_granted / napp) if napp else None,
            latency_mean=lat_mean,
            latency_p95=p95,
        )

    def metrics(self) -> dict[str, Any]:
        """The eight metrics (docs/monitor.md); null with a reason where unknown."""
        v = self._values()
        reasons: dict[str, str] = {}
        if not v.n:
            for name in ("tool_success_rate", "rollback_frequency", "conflict_rate", "live_execution_ratio"):
                reasons[name] = NO_EXECUTIONS
        if v.confidence_drift is None:
            reasons["confidence_drift"] = NO_REAL_OUTCOMES if not self._n_real else BAD_CONFIDENCE
        if v.approval_rate is None:
            reasons["approval_rate"] = NO_APPROVALS
        if v.latency_mean is None:
            reasons["execution_latency_ms"] = NO_EXECUTIONS if not v.n else BAD_DURATION
        health = health_score(v, self.policy, self._health_weights)
        if health is None:
            reasons["system_health_score"] = NO_HEALTH
        return {
            "tool_success_rate": v.tool_success_rate,
            "rollback_frequency": v.rollback_frequency,
            "conflict_rate": v.conflict_rate,
            "live_execution_ratio": v.live_execution_ratio,
            "confidence_drift": v.confidence_drift,
            "approval_rate": v.approval_rate,
            "system_health_score": health,
            "execution_latency_ms": {"mean": v.latency_mean, "p95": v.latency_p95},
            "samples": v.n,
            "null_reasons": reasons,
        }

    def health(self) -> float | None:
        """The health score, 0–100, or None when nothing is known."""
        return health_score(self._values(), self.policy, self._health_weights)

    def history(self) -> list[dict[str, Any]]:
        """``{"time", "health_score"}`` after each observation, in order (for the report)."""
        return list(self._history)

    # -- anomalies ---------------------------------------------------------

    def _after_event(self, time: float) -> list[AnomalyRecord]:
        v = self._values()
        self._history.append({"time": time, "health_score": health_score(v, self.policy, self._health_weights)})
        a = self.policy.anomalies
        enough = v.n >= a.min_samples
        fired: list[AnomalyRecord] = []
        for kind, value, threshold, below in (
            ("unsafe_escalation", v.confidence_drift, a.unsafe_escalation.drift_gt, False),
            ("repeated_failures", v.tool_success_rate, a.repeated_failures.success_lt, True),
            ("high_rollback", v.rollback_frequency, a.high_rollback.rate_gt, False),
            ("high_conflict", v.conflict_rate, a.high_conflict.rate_gt, False),
        ):
            # A null metric never breaches; below min_samples nothing is active.
            active = enough and value is not None and (value < threshold if below else value > threshold)
            if not active:
                self._armed[kind] = True  # the episode is over (or never began)
                continue
            if not self._armed[kind]:
                continue  # still the same episode: it fired once already
            self._armed[kind] = False
            rule = getattr(a, kind)
            fired.append(AnomalyRecord(
                kind=kind, severity=rule.severity, action=rule.action, value=value,
                threshold=threshold, time=time, samples=v.n,
                message=_MESSAGES[kind].format(value=value, threshold=threshold, n=v.n),
            ))
        return fired


class _Values(NamedTuple):
    n: int
    tool_success_rate: float | None
    rollback_frequency: float | None
    conflict_rate: float | None
    live_execution_ratio: float | None
    confidence_drift: float | None
    approval_rate: float | None
    latency_mean: float | None
    latency_p95: float | None


_MESSAGES = {
    "unsafe_escalation": "confidence drift {value:.3f} > {threshold:.3f} over the last {n} executions: "
                         "confidences no longer predict outcomes",
    "repeated_failures": "success rate {value:.3f} < {threshold:.3f} over the last {n} executions",
    "high_rollback": "rollback frequency {value:.3f} > {threshold:.3f} over the last {n} executions",
    "high_conflict": "conflict rate {value:.3f} > {threshold:.3f} over the last {n} executions",
}


def _p95_index(n: int) -> int:
    """Nearest-rank p95: the ceil(0.95 n)-th smallest value (0-based index)."""
    return (95 * n + 99) // 100 - 1


# --------------------------------------------------------------------------
# Health
# --------------------------------------------------------------------------


def _weights(policy: Policy) -> tuple[tuple[str, float], ...]:
    """The health components that count: a finite, positive weight."""
    w = policy.health.weights
    return tuple((name, float(w[name])) for name in HEALTH_COMPONENTS
                 if _finite_number(w.get(name)) and w[name] > 0)


def health_components(v: _Values, policy: Policy) -> dict[str, float | None]:
    """Each component score in [0, 1] (1 is healthy), None when unknown."""
    budget = policy.health.latency_budget_ms
    latency: float | None = None
    if v.latency_mean is not None and _finite_number(budget) and budget > 0:
        latency = budget / (budget + v.latency_mean)
    return {
        "tool_success_rate": v.tool_success_rate,
        "rollback_frequency": None if v.rollback_frequency is None else 1.0 - v.rollback_frequency,
        "conflict_rate": None if v.conflict_rate is None else 1.0 - v.conflict_rate,
        "confidence_drift": None if v.confidence_drift is None else 1.0 - v.confidence_drift,
        "approval_rate": v.approval_rate,
        "latency": latency,
    }


def health_score(v: _Values, policy: Policy,
                 weights: tuple[tuple[str, float], ...] | None = None) -> float | None:
    """100 × the weighted mean of the known components (weights renormalised);
    None when no component with a positive weight is known."""
    comps = health_components(v, policy)
    num = 0.0
    den = 0.0
    for name, w in weights if weights is not None else _weights(policy):
        score = comps[name]
        if score is not None:
            num += w * score
            den += w
    if den <= 0:
        return None
    return min(100.0, max(0.0, 100.0 * num / den))


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
