"""Threshold learning: calibration of confidences and live-threshold recommendations.

SPEC section 6. Input is (confidence, outcome) pairs of *real* executions
(dry_run and live with outcome succeeded or failed; a mock proves nothing and a
lost outcome is unknown). Output is plain data: a recommendation is a signal
and changes a policy only through ``apply_recommendations`` with
``learning.auto_tune`` on (I14). docs/monitor.md ("Threshold learning")
explains the rule and why it is monotone.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any, Iterable

import attrs

from interlock.core.model import Policy, Risk, Threshold

__all__ = [
    "Z_95", "apply_recommendations", "calibration", "evidence_threshold", "recommend",
    "samples_from_executions", "wilson_interval", "wilson_lower",
]

#: Two-sided 95 % normal quantile: the default of every Wilson bound here.
Z_95 = 1.96

_REAL_MODES = ("dry_run", "live")
_RISKS = (Risk.LOW, Risk.MEDIUM, Risk.HIGH)


# --------------------------------------------------------------------------
# Wilson score interval
# --------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; (0, 1) when n == 0.

    Preferred to the raw rate because it is honest about small samples:
    5 successes out of 5 give a lower bound of 0.57, not 1.0.
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = p + z2 / (2 * n)
    margin = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    lo = 0.0 if successes <= 0 else max(0.0, (centre - margin) / denom)
    hi = 1.0 if successes >= n else min(1.0, (centre + margin) / denom)
    return lo, hi


def wilson_lower(successes: int, n: int, z: float = Z_95) -> float:
    """The lower end of the Wilson interval (0.0 when there is no data)."""
    return wilson_interval(successes, n, z)[0]


# --------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------


def calibration(samples: list[tuple[float, bool]], bins: int = 10) -> dict[str, Any]:
    """Brier score, expected calibration error and reliability bins.

    Bins are equal-width on [0, 1]; a confidence c falls in bin
    ``min(floor(c * bins), bins - 1)`` (so 1.0 is in the last bin). Every bin
    is listed; an empty one has null means. Brier and ECE are null without
    samples.
    """
    bins = max(1, int(bins))
    count = [0] * bins
    conf: list[list[float]] = [[] for _ in range(bins)]
    succ = [0] * bins
    sq: list[float] = []
    for c, ok in samples:
        i = min(int(c * bins), bins - 1)
        count[i] += 1
        conf[i].append(c)
        succ[i] += bool(ok)
        sq.append((c - (1.0 if ok else 0.0)) ** 2)
    n = len(sq)
    rows = []
    gaps = []
    for i in range(bins):
        mean_c = math.fsum(conf[i]) / count[i] if count[i] else None
        rate = succ[i] / count[i] if count[i] else None
        if count[i]:
            gaps.append(count[i] * abs(mean_c - rate))
        rows.append({"lo": i / bins, "hi": (i + 1) / bins, "count": count[i],
                     "mean_confidence": mean_c, "success_rate": rate})
    return {
        "brier": math.fsum(sq) / n if n else None,
        "ece": min(1.0, math.fsum(gaps) / n) if n else None,
        "bins": rows,
        "samples": n,
    }


# --------------------------------------------------------------------------
# Samples
# --------------------------------------------------------------------------


def samples_from_executions(executions: Iterable[Any]) -> list[dict[str, Any]]:
    """Learning samples from execution records or their JSONL dicts.

    Only real outcomes: mode dry_run or live, outcome succeeded or failed.
    """
    out = []
    for e in executions:
        d = e if isinstance(e, dict) else attrs.asdict(e, recurse=False)
        if d.get("mode") in _REAL_MODES and d.get("outcome") in ("succeeded", "failed"):
            out.append({"risk": d["risk"], "tool": d["tool"], "confidence": d["confidence"],
                        "success": d["outcome"] == "succeeded"})
    return out


def _valid(s: dict[str, Any]) -> bool:
    c = s.get("confidence")
    return (isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c)
            and 0.0 <= c <= 1.0 and s.get("risk") in {r.value for r in Risk})


# --------------------------------------------------------------------------
# Recommendations
# --------------------------------------------------------------------------


def evidence_threshold(pairs: list[tuple[float, bool]], *, floor: float, target: float,
                       z: float = Z_95) -> float | None:
    """The lowest confidence t at which a success was observed, t >= floor,
    such that the Wilson lower bound of success over the samples with
    confidence >= t reaches ``target``; None when no such t exists.

    Candidates are the confidences of *successes* only: a failure never adds
    a candidate, which is what makes the rule monotone (docs/monitor.md).
    """
    if not pairs:
        return None
    by_conf: dict[float, list[int]] = defaultdict(lambda: [0, 0])  # conf -> [n, successes]
    for c, ok in pairs:
        cell = by_conf[c]
        cell[0] += 1
        cell[1] += bool(ok)
    n_ge = s_ge = 0
    best: float | None = None
    for c in sorted(by_conf, reverse=True):  # suffix sums: samples with confidence >= c
        n_c, s_c = by_conf[c]
        n_ge += n_c
        s_ge += s_c
        if c < floor:
            break
        if s_c and wilson_lower(s_ge, n_ge, z) >= target:
            best = c
    return best


def _entry(pairs: list[tuple[float, bool]], *, current: float, floor: float,
           target: float, z: float) -> dict[str, Any]:
    ev = evidence_threshold(pairs, floor=floor, target=target, z=z)
    if ev is not None:
        rec, status = ev, "qualified"
    else:
        rec = max(floor, current)
        status = "insufficient_evidence" if pairs else "no_samples"
    kept = [ok for c, ok in pairs if c >= rec]
    n, s = len(kept), sum(kept)
    return {
        "current": current,
        "recommended": rec,
        "evidence_threshold": ev,
        "status": status,
        "floor": floor,
        "n": n,
        "successes": s,
        "interval": list(wilson_interval(s, n, z)) if n else None,
        "total_samples": len(pairs),
        "calibration": calibration(pairs),
    }


def recommend(samples: list[dict[str, Any]], policy: Policy, *,
              min_tool_samples: int = 20, z: float = Z_95) -> dict[str, Any]:
    """Live-threshold recommendations per risk, and per tool with enough data.

    ``samples`` are dicts {risk, tool, confidence, success} of real outcomes
    (see ``samples_from_executions``). Per group: the evidence threshold when
    one qualifies, else the current threshold (never lowered without
    evidence); never below ``learning.floor``. Samples with an unknown risk or
    a confidence outside [0, 1] are counted in ``ignored``.
    """
    target = policy.learning.target_success
    good = [s for s in samples if _valid(s)]
    by_risk: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    by_tool: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    tool_risks: dict[str, Counter[str]] = defaultdict(Counter)
    for s in good:
        pair = (float(s["confidence"]), bool(s["success"]))
        by_risk[s["risk"]].append(pair)
        by_tool[s["tool"]].append(pair)
        tool_risks[s["tool"]][s["risk"]] += 1
    risks = {}
    for risk in _RISKS:
        risks[risk.value] = _entry(
            by_risk.get(risk.value, []), current=policy.threshold(risk).live,
            floor=_floor(policy, risk), target=target, z=z)
    tools = {}
    for tool in sorted(by_tool):
        pairs = by_tool[tool]
        if len(pairs) < min_tool_samples:
            continue
        risk = Risk(min(tool_risks[tool].items(), key=lambda kv: (-kv[1], kv[0]))[0])
        override = policy.override(tool)
        current = override.live if override is not None and override.live is not None \
            else policy.threshold(risk).live
        tools[tool] = {"risk": risk.value,
                       **_entry(pairs, current=current, floor=_floor(policy, risk),
                                target=target, z=z)}
    return {
        "target_success": target,
        "z": z,
        "samples": len(good),
        "ignored": len(samples) - len(good),
        "min_tool_samples": min_tool_samples,
        "calibration": calibration([(float(s["confidence"]), bool(s["success"])) for s in good]),
        "risks": risks,
        "tools": tools,
    }


def _floor(policy: Policy, risk: Risk) -> float:
    return policy.learning.floor.get(risk, 0.0)


def apply_recommendations(policy: Policy, recs: dict[str, Any]) -> tuple[Policy, list[dict[str, Any]]]:
    """The policy with the recommended live thresholds, and the changes made.

    I14: without ``learning.auto_tune`` the policy comes back unchanged with
    no changes. With it, each risk's live threshold becomes its
    recommendation, then is raised where needed so that it is never below the
    floor, never below the risk's dry-run threshold, and never below the live
    threshold of a lower risk (thresholds stay monotone in risk, I3). Per-tool
    recommendations are signals only; overrides are not tuned.
    """
    if not policy.learning.auto_tune:
        return policy, []
    thresholds = dict(policy.thresholds)
    changes: list[dict[str, Any]] = []
    prev_live = 0.0
    for risk in _RISKS:
        cur = policy.threshold(risk)
        entry = recs.get("risks", {}).get(risk.value)
        if entry is not None:
            value = entry["recommended"]
            reason = _reason(entry, policy.learning.target_success)
        else:
            value, reason = cur.live, "no recommendation"
        raised = []
        for bound, why in ((_floor(policy, risk), "the floor"),
                           (cur.dry_run, "the dry_run threshold"),
                           (prev_live, "the live threshold of a lower risk")):
            if value < bound:
                value = bound
                raised.append(why)
        value = min(1.0, value)
        if raised:
            reason += "; raised to " + " and ".join(raised)
        prev_live = value
        if value != cur.live:
            thresholds[risk] = Threshold(dry_run=cur.dry_run, live=value)
            changes.append({"risk": risk.value, "from": cur.live, "to": value, "reason": reason})
    if not changes:
        return policy, []
    return attrs.evolve(policy, thresholds=thresholds), changes


def _reason(entry: dict[str, Any], target: float) -> str:
    if entry["status"] == "qualified":
        lo = entry["interval"][0] if entry["interval"] else 0.0
        return (f"Wilson lower bound {lo:.3f} of {entry['successes']}/{entry['n']} successes "
                f"at confidence >= {entry['recommended']:g} reaches target {target:g}")
    if entry["status"] == "no_samples":
        return "no samples: current threshold kept"
    return (f"no threshold reaches target {target:g} on {entry['total_samples']} samples: "
            "current threshold kept")
