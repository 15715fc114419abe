"""Threshold learning properties: I14 and the monotonicity of the rule (docs/monitor.md).

- I14: tuned thresholds never drop below the floor and never change unless
  ``auto_tune`` is on (checked over runs of tuning in a stateful machine whose
  model recomputes the evidence threshold from its definition).
- Monotone evidence: adding failures never lowers the evidence threshold;
  adding successes never raises it (no qualifying threshold counts as +inf).
"""

from __future__ import annotations

import math

import attrs
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from interlock.core.learning import (
    apply_recommendations, evidence_threshold, recommend, wilson_interval, wilson_lower,
)
from interlock.core.model import LearningPolicy, Policy, Risk, Threshold

RISKS = [Risk.LOW, Risk.MEDIUM, Risk.HIGH]
confs = st.sampled_from([0.0, 0.3, 0.5, 0.6, 0.62, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0]) | st.floats(0, 1)
#: Mostly successes: the interesting cases are near the target success rate.
outcomes = st.sampled_from([True, True, True, True, True, True, False])
pairs = st.lists(st.tuples(confs, outcomes), max_size=120)
unit = st.floats(0, 1)


def inf(x):
    return math.inf if x is None else x


def model_evidence(data, floor, target):
    """The definition, by brute force: the lowest success confidence >= floor
    whose samples-at-or-above have a Wilson lower bound >= target."""
    ok = [c for c in {c for c, succ in data if succ} if c >= floor
          and wilson_lower(sum(s for d, s in data if d >= c), sum(1 for d, _ in data if d >= c)) >= target]
    return min(ok) if ok else None


@given(st.integers(0, 400), st.integers(0, 400))
def test_wilson_bound_is_monotone_and_inside_the_unit_interval(s, extra):
    n = s + extra
    lo, hi = wilson_interval(s, n)
    assert 0.0 <= lo <= hi <= 1.0
    assert wilson_lower(s, n + 1) <= lo  # one more failure never raises it
    assert wilson_lower(s + 1, n + 1) >= lo  # one more success never lowers it


@given(pairs, unit, st.floats(0.5, 1.0))
@example([(0.9, True)] * 30 + [(0.8, False)], 0.0, 0.8)
def test_evidence_threshold_matches_its_definition(data, floor, target):
    assert evidence_threshold(data, floor=floor, target=target) == model_evidence(data, floor, target)


@given(pairs, st.lists(confs, min_size=1, max_size=30), unit, st.floats(0.5, 0.99))
# Why failures add no candidate: with candidates from every observed confidence,
# this failure at 0.8 would become the new (lower) threshold, since 200/201
# still clears the target (docs/monitor.md).
@example([(0.9, True)] * 200, [0.8], 0.0, 0.95)
def test_adding_failures_never_lowers_the_evidence_threshold(data, failures, floor, target):
    before = evidence_threshold(data, floor=floor, target=target)
    after = evidence_threshold(data + [(c, False) for c in failures], floor=floor, target=target)
    assert inf(after) >= inf(before)


@given(pairs, st.lists(confs, min_size=1, max_size=30), unit, st.floats(0.5, 0.99))
def test_adding_successes_never_raises_the_evidence_threshold(data, successes, floor, target):
    before = evidence_threshold(data, floor=floor, target=target)
    after = evidence_threshold(data + [(c, True) for c in successes], floor=floor, target=target)
    assert inf(after) <= inf(before)


@given(pairs, st.lists(confs, min_size=1, max_size=30))
def test_recommendation_moves_monotonically_while_evidence_qualifies(data, failures):
    """The recommended value itself is monotone as long as the status stays
    "qualified"; at the boundary the fallback is the current threshold (documented)."""
    pol = Policy(learning=LearningPolicy(target_success=0.9))
    samples = [{"risk": "medium", "tool": "t", "confidence": c, "success": ok} for c, ok in data]
    more = samples + [{"risk": "medium", "tool": "t", "confidence": c, "success": False} for c in failures]
    a = recommend(samples, pol)["risks"]["medium"]
    b = recommend(more, pol)["risks"]["medium"]
    if a["status"] == b["status"] == "qualified":
        assert b["recommended"] >= a["recommended"]
    if b["status"] != "qualified":
        assert b["recommended"] == max(0.6, a["current"])


floors = st.fixed_dictionaries({r: unit for r in RISKS})
threshold_sets = st.fixed_dictionaries({r: st.tuples(unit, unit).map(lambda t: Threshold(*sorted(t)))
                                        for r in RISKS})


class TuningMachine(RuleBasedStateMachine):
    """Runs of execution outcomes, each followed by a tuning step (I14)."""

    @initialize(floor=floors, thresholds=threshold_sets, goal=st.floats(0.5, 0.99), auto=st.booleans())
    def setup(self, floor, thresholds, goal, auto):
        self.policy = Policy(thresholds=thresholds,
                             learning=LearningPolicy(target_success=goal, auto_tune=auto, floor=floor))
        self.samples: list[dict] = []
        self.evidence = {r: None for r in RISKS}
        self.last_added: set[bool] = set()
        self.tuned_with_auto = False

    @rule(risk=st.sampled_from(RISKS), conf=confs, success=st.booleans(), k=st.integers(1, 15))
    def outcomes(self, risk, conf, success, k):
        self.samples += [{"risk": risk.value, "tool": f"tool-{risk.value}", "confidence": conf,
                          "success": success}] * k
        self.last_added.add(success)

    @rule()
    def tune(self):
        old = self.policy
        recs = recommend(self.samples, old, min_tool_samples=20)
        for r in RISKS:
            entry = recs["risks"][r.value]
            data = [(x["confidence"], x["success"]) for x in self.samples if x["risk"] == r.value]
            want = model_evidence(data, old.learning.floor[r], old.learning.target_success)
            assert entry["evidence_threshold"] == want
            assert entry["recommended"] >= old.learning.floor[r]
            prev = self.evidence[r]
            # Monotone across runs: only failures added -> never lower; only successes -> never higher.
            if self.last_added == {False}:
                assert inf(want) >= inf(prev)
            if self.last_added == {True}:
                assert inf(want) <= inf(prev)
            self.evidence[r] = want
        self.last_added = set()
        new, changes = apply_recommendations(old, recs)
        if not old.learning.auto_tune:
            assert new is old and changes == []
        else:
            changed = {c["risk"] for c in changes}
            assert changed == {r.value for r in RISKS if new.thresholds[r].live != old.thresholds[r].live}
            for c in changes:
                assert c["from"] == old.thresholds[Risk(c["risk"])].live
                assert c["to"] == new.thresholds[Risk(c["risk"])].live and c["reason"]
            assert attrs.evolve(new, thresholds=old.thresholds) == old  # only thresholds change
        self.policy = new
        self.tuned_with_auto |= old.learning.auto_tune

    @rule()
    def toggle_auto_tune(self):
        self.policy = attrs.evolve(self.policy, learning=attrs.evolve(
            self.policy.learning, auto_tune=not self.policy.learning.auto_tune))

    @invariant()
    def i14_tuned_thresholds_respect_floor_dry_run_and_risk_order(self):
        # Once a tuning step ran with auto_tune on; before that the operator's
        # policy may sit below its floor (I14 speaks of tuned thresholds).
        if not self.tuned_with_auto:
            return
        t = self.policy.thresholds
        for r in RISKS:
            assert t[r].live >= self.policy.learning.floor[r]
            assert t[r].live >= t[r].dry_run
        assert t[Risk.LOW].live <= t[Risk.MEDIUM].live <= t[Risk.HIGH].live


TestTuning = TuningMachine.TestCase
