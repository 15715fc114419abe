"""Learning signals: the four types, their schemas, and Phase-22 correlation (SPEC section 6)."""

from __future__ import annotations

import attrs
import jsonschema
import pytest

from interlock.core.feedback import (
    SIGNAL_SCHEMAS, SIGNAL_TYPES, build_signals, correlate, validation_problems,
)
from interlock.core.model import Policy, ToolOverride
from interlock.core.records import ConflictRecord, ExecutionRecord, RollbackEvent


def ex(call, tool, *, mode="live", outcome="succeeded", confidence=0.8, risk="medium", duration=10.0,
       error=None, approved_by=None):
    return ExecutionRecord(
        call_id=call, plan_id=call.split("/")[0], agent_id="a", tool=tool, mode=mode, risk=risk,
        confidence=confidence, attempt=1, start=0.0, end=1.0, duration_ms=duration, outcome=outcome,
        error=error, result=None, decision={"approved_by": approved_by}, idempotency_key="k")


def call(cid, tool, state, *, confidence=0.8, risk="medium", v22=None, approved_by=None):
    return {"call_id": cid, "tool": tool, "risk": risk, "confidence": confidence, "final_state": state,
            "phase22_validation_id": v22, "approved_by": approved_by}


def by_type(signals, name):
    return [s for s in signals if s["signal"] == name]


def test_every_signal_validates_against_its_schema_and_the_order_is_stable():
    execs = [ex("p/a", "deploy"), ex("p/b", "deploy", outcome="failed", error="boom"),
             ex("q/c", "write", mode="dry_run", duration=30.0), ex("q/d", "write", mode="mock")]
    calls = [call("p/a", "deploy", "rolled_back", v22="v1"), call("p/b", "deploy", "failed", v22="v1"),
             call("q/c", "write", "succeeded"), call("q/d", "write", "succeeded", confidence=0.2)]
    conflicts = [ConflictRecord("c1", "write_write", ("q/c", "p/a"), "file:x", "serialize", "serialized")]
    rbs = [RollbackEvent("p/a", "p", "undeploy", {}, 1.0, 2.0, "rolled_back", None, "p/b")]
    signals = build_signals(executions=execs, rollbacks=rbs, conflicts=conflicts, calls=calls,
                            policy=Policy(), validations=[{"phase22_validation_id": "v1", "valid": True}],
                            time=9.0)
    assert [s["signal"] for s in signals] == (
        ["TOOL_RELIABILITY"] * 2 + ["APPROVAL_MISMATCH"] * 2 + ["EXECUTION_MODE_ANALYSIS"] * 3
        + ["CONFLICT_PATTERN"])
    for s in signals:
        jsonschema.Draft202012Validator(SIGNAL_SCHEMAS[s["signal"]]).validate(s)
        assert s["time"] == 9.0
        written = {**s, "schema_version": 1, "run_id": "r1"}  # what the writer adds is allowed too
        jsonschema.Draft202012Validator(SIGNAL_SCHEMAS[s["signal"]]).validate(written)
    assert set(SIGNAL_SCHEMAS) == set(SIGNAL_TYPES)
    # The same signals from the JSONL dicts as from the records.
    again = build_signals(executions=[attrs.asdict(e) for e in execs], rollbacks=[attrs.asdict(r) for r in rbs],
                          conflicts=[attrs.asdict(c) for c in conflicts], calls=calls, policy=Policy(),
                          validations=[{"phase22_validation_id": "v1", "valid": True}], time=9.0)
    assert again == signals


def test_schemas_refuse_unknown_and_missing_fields():
    schema = SIGNAL_SCHEMAS["TOOL_RELIABILITY"]
    good = {"signal": "TOOL_RELIABILITY", "time": 1.0, "tool": "t", "success_rate": 1.0,
            "latency_ms_mean": 2.0, "rollback_rate": 0.0, "samples": 3}
    jsonschema.validate(good, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "extra": 1}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({k: v for k, v in good.items() if k != "samples"}, schema)


def test_tool_reliability_counts_real_executions_only():
    execs = [ex("p/a", "t", duration=10.0), ex("p/a", "t", outcome="failed", duration=30.0),
             ex("p/b", "t", mode="dry_run", duration=20.0), ex("p/c", "t", mode="mock"),
             ex("p/d", "m", mode="mock")]
    rbs = [RollbackEvent("p/a", "p", "u", {}, 1.0, 2.0, "rolled_back", None, "p/x"),
           RollbackEvent("p/b", "p", "u", {}, 1.0, None, "skipped_irreversible", None, "p/x")]
    [rel] = by_type(build_signals(executions=execs, rollbacks=rbs, conflicts=[], calls=[], policy=Policy(),
                                  time=0.0), "TOOL_RELIABILITY")
    assert rel == {"signal": "TOOL_RELIABILITY", "time": 0.0, "tool": "t", "success_rate": 2 / 3,
                   "latency_ms_mean": 20.0, "rollback_rate": 0.5, "samples": 3}


def test_high_confidence_failure_uses_the_effective_live_threshold():
    calls = [call("p/a", "t", "failed", confidence=0.8), call("p/b", "t", "failed", confidence=0.7),
             call("p/c", "u", "failed", confidence=0.8), call("p/d", "t", "succeeded", confidence=0.99)]
    pol = Policy(tools={"u": ToolOverride(live=0.9)})
    execs = [ex("p/a", "t", outcome="failed", error="disk full")]
    got = by_type(build_signals(executions=execs, rollbacks=[], conflicts=[], calls=calls, policy=pol, time=1.0),
                  "APPROVAL_MISMATCH")
    assert [(s["call_id"], s["kind"], s["outcome"]) for s in got] == [("p/a", "high_confidence_failure", "failed")]
    assert "disk full" in got[0]["detail"] and "0.75" in got[0]["detail"]


def test_low_confidence_approved_live_below_the_risk_threshold_or_approved_below_dry_run():
    pol = Policy(tools={"risky": ToolOverride(live=0.4)})
    execs = [ex("p/a", "risky", confidence=0.5, approved_by="alice"), ex("p/b", "t", mode="dry_run")]
    calls = [call("p/a", "risky", "succeeded", confidence=0.5),
             call("p/b", "t", "succeeded", confidence=0.2, approved_by="bob"),
             call("p/c", "t", "succeeded", confidence=0.9, approved_by="bob")]
    got = by_type(build_signals(executions=execs, rollbacks=[], conflicts=[], calls=calls, policy=pol, time=1.0),
                  "APPROVAL_MISMATCH")
    assert [(s["call_id"], s["kind"]) for s in got] == [("p/a", "low_confidence_approved"),
                                                        ("p/b", "low_confidence_approved")]
    assert "tool_override" in got[0]["detail"] and "alice" in got[0]["detail"]
    assert "bob" in got[1]["detail"] and "dry_run" in got[1]["detail"]


def test_correlate_by_call_id_and_by_phase22_id():
    calls = [call("p/a", "t", "succeeded", v22="v1"), call("p/b", "t", "failed", v22="v1"),
             call("p/c", "t", "rolled_back", v22="v1"), call("p/d", "t", "cancelled", v22="v1"),
             call("q/e", "t", "succeeded", v22="v2")]
    vals = [{"phase22_validation_id": "v1", "valid": True, "detail": "schema ok"},
            {"call_id": "q/e", "valid": False}, {"call_id": "nope", "valid": True},
            {"phase22_validation_id": "v9", "valid": False}]
    got = correlate(vals, calls, time=3.0)
    assert [(s["call_id"], s["outcome"]) for s in got] == [("p/b", "failed"), ("q/e", "succeeded")]
    assert all(s["kind"] == "validation_contradicts" and s["time"] == 3.0 for s in got)
    assert "v1 says valid (schema ok)" in got[0]["detail"]
    invalid_plan = correlate([{"phase22_validation_id": "v1", "valid": False}], calls)
    # Both the succeeded and the rolled-back call ran successfully; cancelled is not judged.
    assert [s["call_id"] for s in invalid_plan] == ["p/a", "p/c"]


def test_execution_mode_analysis_counts_modes_and_held_back_calls():
    execs = [ex("p/a", "t", mode="dry_run"), ex("p/a", "t", mode="live"), ex("p/b", "t", mode="mock"),
             ex("p/c", "h", mode="dry_run", risk="high")]
    calls = [call("p/a", "t", "succeeded", confidence=0.8), call("p/b", "t", "succeeded", confidence=0.2),
             call("p/x", "t", "rejected", confidence=0.1), call("p/c", "h", "succeeded", risk="high", confidence=0.6)]
    sig = {s["risk"]: s for s in by_type(
        build_signals(executions=execs, rollbacks=[], conflicts=[], calls=calls, policy=Policy(), time=0.0),
        "EXECUTION_MODE_ANALYSIS")}
    med = sig["medium"]
    assert med["calls"] == 3
    assert med["modes"] == {"mock": 1, "dry_run": 0, "live": 1}  # the mode each call last ran in
    assert med["held_back"] == {"live": 1, "dry_run": 1}  # p/b (0.2); the rejected call is not counted
    assert med["thresholds"] == {"dry_run": 0.3, "live": 0.75}
    assert med["recommended"]["samples"] == 2 and med["recommended"]["status"] == "insufficient_evidence"
    assert sig["high"]["held_back"] == {"live": 1, "dry_run": 0}
    assert sig["low"]["calls"] == 0


def test_conflict_pattern_lists_pairs_resources_and_an_ordering():
    calls = [call("p/a", "deploy", "succeeded"), call("q/b", "migrate", "succeeded"),
             call("r/c", "deploy", "succeeded"), call("s/d", "migrate", "succeeded")]
    confs = [ConflictRecord("c1", "write_write", ("q/b", "p/a"), "db:main", "serialize", "serialized"),
             ConflictRecord("c2", "read_write", ("s/d", "r/c", "p/a"), "db:main", "serialize", "serialized"),
             ConflictRecord("c3", "capacity", ("p/a", "r/c"), "tool:deploy", "serialize", "serialized")]
    [pat] = by_type(build_signals(executions=[], rollbacks=[], conflicts=confs, calls=calls, policy=Policy(),
                                  time=0.0), "CONFLICT_PATTERN")
    assert pat["conflicts"] == 3
    assert pat["pairs"] == [  # most frequent first, ties by name
        {"tools": ["deploy", "deploy"], "count": 2, "types": ["capacity", "read_write"]},
        {"tools": ["deploy", "migrate"], "count": 2, "types": ["read_write", "write_write"]},
    ]
    assert pat["resources"] == [{"resource": "db:main", "count": 2, "types": ["read_write", "write_write"]},
                                {"resource": "tool:deploy", "count": 1, "types": ["capacity"]}]
    [order] = pat["suggested_ordering"]
    assert (order["before"], order["after"], order["count"]) == ("migrate", "deploy", 2)


def test_no_conflicts_no_conflict_pattern():
    assert by_type(build_signals(executions=[], rollbacks=[], conflicts=[], calls=[], policy=Policy(), time=0.0),
                   "CONFLICT_PATTERN") == []


def test_validation_problems_name_line_field_and_expectation():
    probs = validation_problems([{"call_id": "p/a", "valid": True}, {"valid": "yes", "call_id": "p/a"},
                                 {"phase22_validation_id": "v"}, {"call_id": "x", "valid": True, "typo": 1}],
                                "v.jsonl")
    assert [(p.file, p.pointer) for p in probs] == [("v.jsonl:2", "/valid"), ("v.jsonl:3", ""), ("v.jsonl:4", "")]
    assert "boolean" in probs[0].message
    assert "valid" in probs[1].message and "required" in probs[1].message
    assert "typo" in probs[2].message
