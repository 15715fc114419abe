"""``interlock tune`` and ``interlock feedback`` as a user runs them, on run directories
with the files a run writes (tool_execution_log.jsonl, orchestration_summary.json,
learning_signals.jsonl)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from interlock.adapters.cli import main
from interlock.adapters.loading import read_document
from interlock.core.convert import structure_policy
from interlock.core.feedback import SIGNAL_SCHEMAS
from interlock.core.model import Risk


def exec_line(call, *, tool="db.migrate", risk="medium", mode="live", outcome="succeeded", confidence=0.8):
    return {"schema_version": 1, "run_id": "r1", "call_id": call, "plan_id": call.split("/")[0],
            "agent_id": "a", "tool": tool, "mode": mode, "risk": risk, "confidence": confidence,
            "attempt": 1, "start": 0.0, "end": 1.0, "duration_ms": 5.0, "outcome": outcome,
            "error": None if outcome == "succeeded" else "boom", "result": None, "decision": {},
            "idempotency_key": "k", "phase21_plan_id": None, "phase22_validation_id": None}


def write_run(d: Path, lines: list[dict], summary: dict | None = None) -> Path:
    d.mkdir(parents=True)
    (d / "tool_execution_log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    if summary is not None:
        (d / "orchestration_summary.json").write_text(json.dumps(summary))
    return d


def medium_history(n_ok=150, n_fail=8):
    """Medium-risk calls: every one at >= 0.65 succeeded, the failures sit at 0.55."""
    lines = [exec_line(f"p{i}/s", confidence=0.65 + (i % 10) / 100) for i in range(n_ok)]
    lines += [exec_line(f"f{i}/s", confidence=0.55, outcome="failed") for i in range(n_fail)]
    lines += [exec_line(f"m{i}/s", mode="mock", confidence=0.1) for i in range(20)]  # mocks prove nothing
    return lines


def test_tune_prints_recommendations_and_the_diff_and_writes_a_loadable_policy(tmp_path, capsys):
    run1 = write_run(tmp_path / "r1", medium_history()[:100])
    run2 = write_run(tmp_path / "r2", medium_history()[100:])
    policy = tmp_path / "policy.yaml"
    policy.write_text("schema_version: 1\nallow_live: true\nthresholds:\n  medium: {live: 0.8}\n")
    out = tmp_path / "tuned.yaml"
    assert main(["tune", str(run1), str(run2), "--policy", str(policy), "--write", str(out)]) == 0
    text = capsys.readouterr().out
    assert "178 executions in 2 run(s); 158 real outcomes" in text
    cols = next(line for line in text.splitlines() if line.startswith("medium")).split()
    # risk samples brier ece current recommended n successes [lo, hi] status
    assert cols[:2] == ["medium", "158"] and cols[4:8] == ["0.8", "0.65", "150", "150"]
    assert cols[-1] == "qualified"
    assert "medium: live 0.8 -> 0.65" in text
    assert f"--- {policy}" in text and f"+++ {out}" in text
    assert "-    live: 0.8\n+    live: 0.65" in text
    assert "auto_tune is off" in text
    tuned = structure_policy(read_document(out), str(out))
    assert tuned.thresholds[Risk.MEDIUM].live == 0.65
    assert tuned.allow_live is True and tuned.learning.auto_tune is False  # the rest is kept
    assert policy.read_text().endswith("{live: 0.8}\n")  # the original is untouched


def test_tune_without_evidence_recommends_no_change(tmp_path, capsys):
    run1 = write_run(tmp_path / "r1", [exec_line("p/s", confidence=0.9)] * 5)
    assert main(["tune", str(run1)]) == 0
    text = capsys.readouterr().out
    assert "no threshold change recommended" in text
    assert "insufficient_evidence" in text and "---" not in text


def test_tune_reports_broken_run_files_with_file_line_and_field(tmp_path, capsys):
    run1 = write_run(tmp_path / "r1", [exec_line("p/s"), {**exec_line("q/s"), "confidence": "high"}])
    with (run1 / "tool_execution_log.jsonl").open("a") as fh:
        fh.write("{truncated\n")
    (tmp_path / "r2").mkdir()
    assert main(["tune", str(run1), str(tmp_path / "r2"), str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert f"{run1}/tool_execution_log.jsonl:2: /confidence: \"high\"; expected a number in [0, 1]" in err
    assert f"{run1}/tool_execution_log.jsonl:3: (document): not valid JSON" in err
    assert f"{tmp_path / 'r2'}/tool_execution_log.jsonl: (document): file not found" in err
    assert f"{tmp_path / 'missing'}: (document): not a directory" in err


def test_tune_refuses_to_overwrite_its_policy(tmp_path, capsys):
    run1 = write_run(tmp_path / "r1", medium_history())
    policy = tmp_path / "policy.yaml"
    policy.write_text("schema_version: 1\n")
    assert main(["tune", str(run1), "--policy", str(policy), "--write", str(policy)]) == 2
    assert "is the --policy file" in capsys.readouterr().err
    assert policy.read_text() == "schema_version: 1\n"


def test_tune_reports_a_bad_policy(tmp_path, capsys):
    run1 = write_run(tmp_path / "r1", medium_history())
    policy = tmp_path / "policy.yaml"
    policy.write_text("schema_version: 1\nlearning: {floor: {medium: 2}}\n")
    assert main(["tune", str(run1), "--policy", str(policy)]) == 2
    assert "/learning/floor/medium" in capsys.readouterr().err


# -- feedback ------------------------------------------------------------------


def summary(calls):
    return {"schema_version": 1, "run_id": "run-7",
            "plans": [{"plan_id": "rel", "phase22_validation_id": "v22-1"}, {"plan_id": "ops"}],
            "calls": calls}


def call_row(cid, state, tool="db.migrate", confidence=0.8):
    return {"call_id": cid, "plan_id": cid.split("/")[0], "tool": tool, "risk": "medium",
            "confidence": confidence, "final_state": state}


def test_feedback_appends_schema_valid_mismatches_once(tmp_path, capsys):
    calls = [call_row("rel/build", "succeeded"), call_row("rel/deploy", "failed"), call_row("ops/clean", "succeeded")]
    run = write_run(tmp_path / "r", [exec_line("rel/build"), exec_line("rel/deploy", outcome="failed")], summary(calls))
    signals = run / "learning_signals.jsonl"
    signals.write_text(json.dumps({"schema_version": 1, "run_id": "run-7", "signal": "TOOL_RELIABILITY"}) + "\n")
    vals = tmp_path / "v.jsonl"
    vals.write_text('{"phase22_validation_id": "v22-1", "valid": true}\n\n'
                    '{"call_id": "ops/clean", "valid": false, "detail": "wrong bucket"}\n'
                    '{"call_id": "zzz/unknown", "valid": true}\n')
    assert main(["feedback", str(run), "--validations", str(vals)]) == 0
    out = capsys.readouterr().out
    assert "appended 2 APPROVAL_MISMATCH signal(s)" in out and "1 named no call" in out
    lines = [json.loads(x) for x in signals.read_text().splitlines()]
    assert lines[0]["signal"] == "TOOL_RELIABILITY"  # append-only: earlier lines stay
    new = lines[1:]
    assert [(s["call_id"], s["kind"], s["outcome"]) for s in new] == [
        ("rel/deploy", "validation_contradicts", "failed"), ("ops/clean", "validation_contradicts", "succeeded")]
    for s in new:
        assert (s["schema_version"], s["run_id"]) == (1, "run-7")
        jsonschema.Draft202012Validator(SIGNAL_SCHEMAS["APPROVAL_MISMATCH"]).validate(s)
    assert "wrong bucket" in new[1]["detail"]
    assert main(["feedback", str(run), "--validations", str(vals)]) == 0
    assert "appended 0" in capsys.readouterr().out and len(signals.read_text().splitlines()) == 3


def test_feedback_rejects_bad_validations_and_appends_nothing(tmp_path, capsys):
    run = write_run(tmp_path / "r", [exec_line("rel/build")], summary([call_row("rel/build", "failed")]))
    vals = tmp_path / "v.jsonl"
    vals.write_text('{"call_id": "rel/build", "valid": "yes"}\n[1]\n{"valid": true}\n')
    assert main(["feedback", str(run), "--validations", str(vals)]) == 2
    err = capsys.readouterr().err
    assert f"{vals}:1: /valid: expected a boolean, got str" in err
    assert f"{vals}:2: (document): a JSON list; expected an object" in err
    assert f"{vals}:3: (document): expected a phase22_validation_id or a call_id" in err
    assert not (run / "learning_signals.jsonl").exists()


@pytest.mark.parametrize("broken, expected", [
    (None, "orchestration_summary.json: (document): file not found"),
    ("{", "orchestration_summary.json: (document): not valid JSON"),
    (json.dumps({"run_id": "r", "calls": [{"call_id": "a/b", "tool": 3}]}),
     "orchestration_summary.json: /calls/0/tool: 3; expected a string"),
])
def test_feedback_reports_a_broken_run_directory(tmp_path, capsys, broken, expected):
    run = write_run(tmp_path / "r", [])
    if broken is not None:
        (run / "orchestration_summary.json").write_text(broken)
    vals = tmp_path / "v.jsonl"
    vals.write_text('{"call_id": "a/b", "valid": true}\n')
    assert main(["feedback", str(run), "--validations", str(vals)]) == 2
    assert expected in capsys.readouterr().err


def test_help_texts_carry_an_example(capsys):
    for cmd in ("tune", "feedback"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        assert "Example:" in capsys.readouterr().out


def test_written_policy_keeps_yaml_safe(tmp_path):
    run1 = write_run(tmp_path / "r1", medium_history())
    out = tmp_path / "tuned.yaml"
    assert main(["tune", str(run1), "--write", str(out)]) == 0
    assert yaml.safe_load(out.read_text()) == {"schema_version": 1, "thresholds": {"medium": {"live": 0.65}}}
