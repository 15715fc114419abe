"""Calibration, the Wilson bound and live-threshold recommendations (SPEC section 6)."""

from __future__ import annotations

import attrs
import pytest

from interlock.core.learning import (
    apply_recommendations, calibration, evidence_threshold, recommend, samples_from_executions,
    wilson_interval, wilson_lower,
)
from interlock.core.model import LearningPolicy, Policy, Risk, Threshold, ToolOverride


def s(confidence, success, risk="medium", tool="t"):
    return {"risk": risk, "tool": tool, "confidence": confidence, "success": success}


def test_wilson_known_values():
    assert wilson_lower(5, 5) == pytest.approx(5 / (5 + 1.96 ** 2))  # all successes: n / (n + z^2)
    lo, hi = wilson_interval(8, 10)
    assert (lo, hi) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_lower(0, 50) == 0.0
    assert wilson_interval(50, 50)[1] == 1.0


def test_calibration_brier_ece_and_bins():
    samples = [(0.95, True), (0.95, False), (0.15, False), (1.0, True)]
    cal = calibration(samples, bins=10)
    assert cal["samples"] == 4
    assert cal["brier"] == pytest.approx((0.05 ** 2 + 0.95 ** 2 + 0.15 ** 2 + 0.0) / 4)
    assert len(cal["bins"]) == 10
    last = cal["bins"][9]
    assert (last["lo"], last["hi"], last["count"]) == (0.9, 1.0, 3)  # 1.0 falls in the last bin
    assert last["mean_confidence"] == pytest.approx(2.9 / 3)
    assert last["success_rate"] == pytest.approx(2 / 3)
    assert cal["bins"][1]["count"] == 1
    assert cal["bins"][5] == {"lo": 0.5, "hi": 0.6, "count": 0, "mean_confidence": None, "success_rate": None}
    assert cal["ece"] == pytest.approx((3 * abs(2.9 / 3 - 2 / 3) + 1 * 0.15) / 4)


def test_calibration_without_samples_is_null():
    cal = calibration([])
    assert (cal["brier"], cal["ece"], cal["samples"]) == (None, None, 0)
    assert all(b["count"] == 0 for b in cal["bins"])


def test_only_real_outcomes_are_samples():
    lines = [
        {"mode": "live", "outcome": "succeeded", "risk": "high", "tool": "a", "confidence": 0.9},
        {"mode": "dry_run", "outcome": "failed", "risk": "low", "tool": "b", "confidence": 0.2},
        {"mode": "mock", "outcome": "succeeded", "risk": "low", "tool": "b", "confidence": 0.2},
        {"mode": "live", "outcome": "lost", "risk": "low", "tool": "b", "confidence": 0.2},
    ]
    assert samples_from_executions(lines) == [
        {"risk": "high", "tool": "a", "confidence": 0.9, "success": True},
        {"risk": "low", "tool": "b", "confidence": 0.2, "success": False},
    ]


def test_recommends_the_lowest_success_confidence_whose_wilson_bound_reaches_the_target():
    samples = [s(0.9, True)] * 100 + [s(0.7, True)] * 20 + [s(0.65, False)] * 5
    rec = recommend(samples, Policy())["risks"]["medium"]
    # At 0.65 the five failures pull the bound under 0.95; at 0.7, 120/120 succeed.
    assert rec["status"] == "qualified"
    assert rec["recommended"] == 0.7 == rec["evidence_threshold"]
    assert (rec["n"], rec["successes"], rec["current"], rec["total_samples"]) == (120, 120, 0.75, 125)
    assert rec["interval"][0] >= 0.95
    assert rec["calibration"]["samples"] == 125


def test_never_recommends_below_the_floor():
    samples = [s(0.4, True)] * 200 + [s(0.62, True)] * 100  # medium floor is 0.60
    rec = recommend(samples, Policy())["risks"]["medium"]
    assert rec["recommended"] == 0.62
    only_low = recommend([s(0.4, True)] * 200, Policy())["risks"]["medium"]
    assert (only_low["recommended"], only_low["status"]) == (0.75, "insufficient_evidence")


def test_keeps_the_current_threshold_without_enough_evidence():
    recs = recommend([s(0.8, True)] * 10, Policy())  # 10/10: Wilson lower bound 0.72
    assert recs["risks"]["medium"]["recommended"] == 0.75
    assert recs["risks"]["medium"]["status"] == "insufficient_evidence"
    assert recs["risks"]["high"]["status"] == "no_samples"
    assert recs["risks"]["high"]["recommended"] == 0.9


def test_evidence_can_raise_a_threshold():
    samples = [s(0.95, True)] * 80 + [s(0.8, False)] * 20
    rec = recommend(samples, Policy())["risks"]["medium"]
    assert rec["recommended"] == 0.95 > rec["current"]


def test_per_tool_only_with_enough_samples_and_against_its_override():
    pol = Policy(tools={"big": ToolOverride(live=0.85)})
    samples = [s(0.9, True, tool="big")] * 80 + [s(0.9, True, tool="small")] * 5
    recs = recommend(samples, pol, min_tool_samples=20)
    assert set(recs["tools"]) == {"big"}
    assert recs["tools"]["big"]["risk"] == "medium"
    assert recs["tools"]["big"]["current"] == 0.85
    assert recs["tools"]["big"]["recommended"] == 0.9


def test_invalid_samples_are_ignored_and_counted():
    recs = recommend([s(float("nan"), True), s(1.5, True), s(0.5, True, risk="extreme"), s(0.5, True)], Policy())
    assert (recs["samples"], recs["ignored"]) == (1, 3)


def test_evidence_threshold_direct():
    assert evidence_threshold([], floor=0.0, target=0.9) is None
    assert evidence_threshold([(0.5, True)] * 40, floor=0.0, target=0.9) == 0.5
    assert evidence_threshold([(0.5, True)] * 40, floor=0.6, target=0.9) is None


# -- apply (I14) -------------------------------------------------------------


def _recs(**live):
    return {"risks": {r: {"recommended": v, "status": "qualified", "interval": [0.96, 1.0],
                          "successes": 100, "n": 100, "total_samples": 100} for r, v in live.items()}}


def test_apply_without_auto_tune_changes_nothing():
    pol = Policy()
    new, changes = apply_recommendations(pol, _recs(low=0.35, medium=0.62, high=0.86))
    assert new is pol and changes == []


def test_apply_with_auto_tune_sets_thresholds_and_lists_changes():
    pol = Policy(learning=LearningPolicy(auto_tune=True))
    new, changes = apply_recommendations(pol, _recs(low=0.35, medium=0.62, high=0.95))
    assert {r.value: t.live for r, t in new.thresholds.items()} == {"low": 0.35, "medium": 0.62, "high": 0.95}
    assert [(c["risk"], c["from"], c["to"]) for c in changes] == [
        ("low", 0.5, 0.35), ("medium", 0.75, 0.62), ("high", 0.9, 0.95)]
    assert all("Wilson" in c["reason"] for c in changes)
    assert new.thresholds[Risk.MEDIUM].dry_run == 0.3  # dry-run thresholds are not tuned


def test_apply_keeps_floor_dry_run_and_monotone_in_risk():
    pol = Policy(
        thresholds={Risk.LOW: Threshold(0.0, 0.5), Risk.MEDIUM: Threshold(0.7, 0.75), Risk.HIGH: Threshold(0.5, 0.9)},
        learning=LearningPolicy(auto_tune=True),
    )
    new, changes = apply_recommendations(pol, _recs(low=0.8, medium=0.1, high=0.86))
    live = {r.value: t.live for r, t in new.thresholds.items()}
    # medium: 0.1 -> floor 0.6 -> dry_run 0.7 -> low's 0.8; high 0.86 -> 0.8 is fine already.
    assert live == {"low": 0.8, "medium": 0.8, "high": 0.86}
    medium = next(c for c in changes if c["risk"] == "medium")
    assert "the floor" in medium["reason"] and "lower risk" in medium["reason"]


def test_apply_without_a_recommendation_for_a_risk_still_respects_the_floor():
    pol = Policy(thresholds={**Policy().thresholds, Risk.HIGH: Threshold(0.5, 0.5)},
                 learning=LearningPolicy(auto_tune=True))
    new, changes = apply_recommendations(pol, {"risks": {}})
    assert new.thresholds[Risk.HIGH].live == 0.85
    assert changes == [{"risk": "high", "from": 0.5, "to": 0.85,
                        "reason": "no recommendation; raised to the floor"}]
    assert attrs.evolve(pol, thresholds=new.thresholds) == new
