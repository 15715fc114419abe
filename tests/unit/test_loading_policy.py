"""Policy load rules (SPEC section 3): every field optional, merged over the
safe defaults; the orderings that invariant I3 needs are load errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from interlock.core.convert import structure_catalog, structure_policy
from interlock.core.errors import LoadError
from interlock.core.model import (
    LockMode,
    OnDenied,
    Policy,
    RateRule,
    Risk,
    Strategy,
    Threshold,
    ToolOverride,
)

ROOT = Path(__file__).parents[2]
CATALOG = structure_catalog(yaml.safe_load((ROOT / "examples/basic/catalog.yaml").read_text()), "c")
FILE = "policy.yaml"


def problems(d, catalog=CATALOG):
    with pytest.raises(LoadError) as info:
        structure_policy(d, FILE, catalog)
    assert all(p.file == FILE for p in info.value.problems)
    return {p.pointer: p.message for p in info.value.problems}


def only(d, pointer, *words, catalog=CATALOG):
    found = problems(d, catalog)
    assert list(found) == [pointer], found
    for w in words:
        assert w in found[pointer], (w, found[pointer])


def test_empty_policy_is_the_safe_default():
    assert structure_policy({}, FILE) == Policy()
    assert Policy().allow_live is False


def test_example_policy_loads():
    p = structure_policy(yaml.safe_load((ROOT / "examples/basic/policy.yaml").read_text()), FILE, CATALOG)
    assert p.allow_live and p.lock_mode is LockMode.DRY_RUN
    assert p.thresholds[Risk.HIGH] == Threshold(dry_run=0.5, live=0.92)
    assert p.approval.required_for == (Risk.MEDIUM, Risk.HIGH)
    assert p.tools["fs.delete_file"] == ToolOverride(approval=True, live=0.95)
    assert p.anomalies.high_rollback == RateRule(rate_gt=0.25, severity=6, action="review")
    assert p.learning.floor == {Risk.LOW: 0.3, Risk.MEDIUM: 0.6, Risk.HIGH: 0.88}


def test_schema_version_is_optional_but_must_be_1():
    assert structure_policy({"schema_version": 1}, FILE) == Policy()
    only({"schema_version": 3}, "/schema_version", "unsupported schema_version 3; this interlock reads 1")


def test_allow_live_is_a_boolean():
    only({"allow_live": "yes"}, "/allow_live", "true or false")
    only({"allow_live": 1}, "/allow_live", "true or false")


def test_lock_mode():
    assert structure_policy({"lock_mode": "dry_run"}, FILE).lock_mode is LockMode.DRY_RUN
    only({"lock_mode": "live"}, "/lock_mode", "one of: mock_only, dry_run")


def test_max_concurrency_at_least_1():
    only({"max_concurrency": 0}, "/max_concurrency", "an integer >= 1")


def test_thresholds_merge_over_the_defaults():
    p = structure_policy({"thresholds": {"medium": {"live": 0.8}}}, FILE)
    assert p.thresholds[Risk.MEDIUM] == Threshold(dry_run=0.3, live=0.8)
    assert p.thresholds[Risk.LOW] == Policy().thresholds[Risk.LOW]


def test_threshold_values_in_unit_interval():
    only({"thresholds": {"low": {"live": 1.2}}}, "/thresholds/low/live", "between 0 and 1")


def test_threshold_risk_must_be_known():
    only({"thresholds": {"critical": {"live": 1}}}, "/thresholds/critical", "unknown key 'critical'")


def test_dry_run_must_not_exceed_live():
    only({"thresholds": {"high": {"dry_run": 0.95}}}, "/thresholds/high",
         "dry_run (0.95) is above live (0.9, the default)", "dry_run <= live")


def test_thresholds_must_not_decrease_with_risk_invariant_i3():
    only({"thresholds": {"low": {"live": 0.8}}}, "/thresholds/medium/live",
         "below that of low (0.8)", "0.75, the default", "I3")
    only({"thresholds": {"high": {"dry_run": 0.2, "live": 0.9}}}, "/thresholds/high/dry_run", "I3")


def test_required_for_must_be_upward_closed_invariant_i3():
    only({"approval": {"required_for": ["medium"]}}, "/approval/required_for",
         "lists medium but not high", "upward closed", "I3")
    only({"approval": {"required_for": ["low", "high"]}}, "/approval/required_for", "not medium")
    assert structure_policy({"approval": {"required_for": []}}, FILE).approval.required_for == ()


def test_required_for_lists_risks_once():
    only({"approval": {"required_for": ["high", "extreme"]}}, "/approval/required_for/1", "low, medium, high")
    only({"approval": {"required_for": ["high", "high"]}}, "/approval/required_for/1", "listed twice")


def test_approval_timeout_and_on_denied():
    only({"approval": {"timeout_s": 0}}, "/approval/timeout_s", "greater than 0")
    assert structure_policy({"approval": {"on_denied": "cancel"}}, FILE).approval.on_denied is OnDenied.CANCEL
    only({"approval": {"on_denied": "retry"}}, "/approval/on_denied", "dry_run, mock, cancel")


def test_tool_overrides_must_name_catalog_tools():
    only({"tools": {"fs.writ_file": {"deny": True}}}, "/tools/fs.writ_file",
         "unknown tool 'fs.writ_file'", "did you mean 'fs.write_file'?")


def test_tool_overrides_unchecked_without_a_catalog():
    assert structure_policy({"tools": {"anything": {"deny": True}}}, FILE, None).tools == {
        "anything": ToolOverride(deny=True)}


def test_tool_override_fields():
    only({"tools": {"fs.read_file": {"live": 2}}}, "/tools/fs.read_file/live", "between 0 and 1")
    only({"tools": {"fs.read_file": {"deny": "no"}}}, "/tools/fs.read_file/deny", "true or false")
    only({"tools": {"fs.read_file": {"approve": True}}}, "/tools/fs.read_file/approve", "did you mean 'approval'?")
    only({"tools": {"fs.read_file": {"live": 0.2, "dry_run": 0.4}}}, "/tools/fs.read_file", "dry_run <= live")


def test_tool_name_with_slash_is_escaped_in_the_pointer():
    only({"tools": {"a/b~c": {}}}, "/tools/a~1b~0c", "unknown tool")


@pytest.mark.parametrize("kind, allowed, bad", [
    ("write_write", ["serialize", "priority", "escalate"], "deduplicate"),
    ("read_write", ["serialize", "priority", "escalate"], "deduplicate"),
    ("mutually_exclusive", ["serialize", "priority", "escalate"], "deduplicate"),
    ("duplicate_irreversible", ["deduplicate", "serialize", "escalate"], "priority"),
    ("capacity", ["serialize"], "escalate"),
    ("dependency", ["escalate"], "serialize"),
])
def test_conflict_strategies_allowed_per_type(kind, allowed, bad):
    for good in allowed:
        assert structure_policy({"conflicts": {kind: good}}, FILE).conflicts.__getattribute__(kind) is Strategy(good)
    only({"conflicts": {kind: bad}}, f"/conflicts/{kind}", "one of: " + ", ".join(allowed))


def test_anomaly_settings():
    only({"anomalies": {"window": 0}}, "/anomalies/window", ">= 1")
    only({"anomalies": {"min_samples": 0}}, "/anomalies/min_samples", ">= 1")
    only({"anomalies": {"unsafe_escalation": {"drift_gt": 1.5}}}, "/anomalies/unsafe_escalation/drift_gt", "between 0 and 1")
    only({"anomalies": {"repeated_failures": {"severity": 0}}}, "/anomalies/repeated_failures/severity", "between 1 and 10")
    only({"anomalies": {"high_conflict": {"action": "panic"}}}, "/anomalies/high_conflict/action",
         "lock, alert, review, reorder")
    only({"anomalies": {"high_rollback": {"rate": 0.1}}}, "/anomalies/high_rollback/rate", "did you mean 'rate_gt'?")


def test_partial_anomaly_rule_merges_over_its_default():
    p = structure_policy({"anomalies": {"high_conflict": {"severity": 9}}}, FILE)
    assert p.anomalies.high_conflict == RateRule(rate_gt=0.5, severity=9, action="reorder")


def test_learning_settings():
    only({"learning": {"target_success": 0}}, "/learning/target_success", "greater than 0 and at most 1")
    assert structure_policy({"learning": {"target_success": 1}}, FILE).learning.target_success == 1.0
    only({"learning": {"auto_tune": "on"}}, "/learning/auto_tune", "true or false")
    only({"learning": {"floor": {"high": -0.1}}}, "/learning/floor/high", "between 0 and 1")


def test_health_weights():
    p = structure_policy({"health": {"weights": {"latency": 0}}}, FILE)
    assert p.health.weights["latency"] == 0 and p.health.weights["tool_success_rate"] == 0.35
    only({"health": {"weights": {"latencyy": 1}}}, "/health/weights/latencyy", "did you mean 'latency'?")
    only({"health": {"weights": {"latency": -1}}}, "/health/weights/latency", ">= 0")
    zero = {m: 0 for m in Policy().health.weights}
    only({"health": {"weights": zero}}, "/health/weights", "positive")
    only({"health": {"latency_budget_ms": 0}}, "/health/latency_budget_ms", "greater than 0")


def test_a_broken_section_does_not_crash_the_rules():
    found = problems({"health": 3, "thresholds": [], "approval": "x", "tools": 1})
    assert set(found) == {"/health", "/thresholds", "/approval", "/tools"}


def test_several_policy_problems_together():
    found = problems({"allow_live": "true", "thresholds": {"low": {"live": 0.99}},
                      "approval": {"required_for": ["low"]}, "tools": {"nope": {}}})
    assert set(found) == {"/allow_live", "/thresholds/medium/live", "/approval/required_for", "/tools/nope"}


def test_policy_not_a_mapping():
    only(["allow_live"], "", "expected a mapping at the top level")


def test_one_mistake_one_problem_for_a_typo_in_required_for():
    only({"approval": {"required_for": ["medium", "hgh"]}}, "/approval/required_for/1", "low, medium, high")
