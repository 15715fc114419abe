"""The seven output files: schemas (committed == generated, I13 ranges), writers, atomicity."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from interlock.adapters import outputs
from interlock.adapters.cli import EnvironmentProblem
from interlock.adapters.outputs import (
    OUTPUTS,
    JsonlWriter,
    prepare_out_dir,
    validate_run_dir,
    write_json_atomic,
    write_outputs,
)
from interlock.core.audit import GENESIS, verify_log_bytes
from interlock.core.output_schemas import OUTPUT_FILES, output_schemas, render_output_schemas
from tests import audit_samples as sample

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "specs" / "schemas"


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(output_schemas()[name])


def write_sample(out: Path, **override) -> tuple[dict, dict[str, Path]]:
    summary = sample.summary()
    kwargs = dict(
        run_id=sample.RUN_ID, summary=summary, health=sample.health(), transitions=sample.transitions(),
        executions=sample.executions(), conflicts=sample.conflicts(), rollbacks=sample.rollbacks(),
        signals=sample.signals(),
    )
    kwargs.update(override)
    return kwargs["summary"], write_outputs(out, **kwargs)


# -- schemas ---------------------------------------------------------------


def test_committed_schemas_equal_the_generated_ones():
    rendered = render_output_schemas()
    assert sorted(rendered) == sorted(OUTPUT_FILES.values())
    for name, text in rendered.items():
        path = SCHEMA_DIR / name
        assert path.is_file(), f"{path} missing: run write_output_schemas('specs/schemas')"
        assert path.read_text(encoding="utf-8") == text, f"{name} drifted from core/output_schemas.py"


def test_schemas_are_valid_draft_2020_12_and_cover_the_seven_outputs():
    schemas = output_schemas()
    assert set(schemas) == set(OUTPUTS.names())
    for schema in schemas.values():
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"].endswith("2020-12/schema")


def test_hand_built_outputs_validate(tmp_path):
    summary, _ = write_sample(tmp_path / "run")
    assert validate_run_dir(tmp_path / "run") == []
    assert summary["audit"]["transitions"] == len(sample.STEPS)


@pytest.mark.parametrize("metric", ["tool_success_rate", "rollback_frequency", "conflict_rate",
                                    "live_execution_ratio", "confidence_drift", "approval_rate"])
@pytest.mark.parametrize("bad", [-0.01, 1.01])
def test_rates_outside_0_1_are_rejected(metric, bad):
    doc = sample.health()
    doc["metrics"][metric] = bad
    assert not validator("system_health.json").is_valid(doc)
    doc = sample.summary() | {"audit": {"transitions": 0, "head_hash": GENESIS}}
    doc["metrics"][metric] = bad
    assert not validator("orchestration_summary.json").is_valid(doc)
    doc["metrics"][metric] = None
    assert validator("orchestration_summary.json").is_valid(doc)


@pytest.mark.parametrize("bad", [-1, 100.5])
def test_health_outside_0_100_is_rejected(bad):
    for where in (("health_score",), ("metrics", "system_health_score"), ("history", 1, "health_score")):
        doc = sample.health()
        target = doc
        for key in where[:-1]:
            target = target[key]
        target[where[-1]] = bad
        assert not validator("system_health.json").is_valid(doc), where


def test_schemas_reject_unknown_fields_wrong_versions_and_unknown_values():
    v = validator("system_health.json")
    assert v.is_valid(sample.health())
    assert not v.is_valid(sample.health() | {"typo": 1})
    assert not v.is_valid(sample.health() | {"schema_version": 2})
    bad_lock = sample.health()
    bad_lock["lock"]["state"] = "half-locked"
    assert not v.is_valid(bad_lock)
    summary = sample.summary() | {"audit": {"transitions": 0, "head_hash": GENESIS}}
    s = validator("orchestration_summary.json")
    assert s.is_valid(summary)
    bad_state = copy.deepcopy(summary)
    bad_state["calls"][0]["final_state"] = "done"
    assert not s.is_valid(bad_state)
    bad_conf = copy.deepcopy(summary)
    bad_conf["calls"][0]["confidence"] = 1.5
    assert not s.is_valid(bad_conf)
    assert not s.is_valid({k: v for k, v in summary.items() if k != "audit"})


def test_transition_lines_must_be_edges_of_the_named_machine(tmp_path):
    write_sample(tmp_path / "run")
    lines = [json.loads(t) for t in (tmp_path / "run" / OUTPUTS.transitions).read_text().splitlines()]
    v = validator("execution_state_transitions.jsonl")
    assert all(v.is_valid(line) for line in lines)
    system = next(line for line in lines if line["machine"] == "system")
    assert not v.is_valid(system | {"to": "running_live"})
    assert not v.is_valid(lines[0] | {"trigger": "teleport"})
    assert not v.is_valid(lines[0] | {"hash": "xyz"})


def test_learning_signals_are_discriminated_by_signal():
    v = validator("learning_signals.jsonl")
    base = {"schema_version": 1, "run_id": "r"}
    good = [base | s for s in sample.signals()]
    assert all(v.is_valid(s) for s in good)
    assert not v.is_valid(base | {"signal": "GUESSWORK", "time": 1.0})
    assert not v.is_valid(good[0] | {"success_rate": 2.0})
    assert not v.is_valid({k: val for k, val in good[1].items() if k != "time"})


def test_execution_and_rollback_lines_validate_and_reject_bad_enums(tmp_path):
    write_sample(tmp_path / "run")
    run = tmp_path / "run"
    ex = [json.loads(t) for t in (run / OUTPUTS.executions).read_text().splitlines()]
    rb = [json.loads(t) for t in (run / OUTPUTS.rollbacks).read_text().splitlines()]
    assert [e["call_id"] for e in ex] == ["p1/a", "p1/b"] and rb[0]["trigger_call"] == "p1/b"
    assert not validator("tool_execution_log.jsonl").is_valid(ex[0] | {"mode": "turbo"})
    assert not validator("tool_execution_log.jsonl").is_valid(ex[0] | {"duration_ms": -1})
    assert not validator("rollback_events.jsonl").is_valid(rb[0] | {"outcome": "maybe"})
    conflicts = json.loads((run / OUTPUTS.conflicts).read_text())
    assert conflicts["conflicts"][0]["calls"] == ["p1/a", "p1/b"]
    conflicts["conflicts"][0]["type"] = "bad_vibes"
    assert not validator("tool_conflicts.json").is_valid(conflicts)


# -- write_outputs ---------------------------------------------------------


def test_write_outputs_writes_seven_files_with_a_verifiable_chain(tmp_path):
    summary, paths = write_sample(tmp_path / "run")
    assert set(paths) == set(OUTPUTS.names()) and all(p.is_file() for p in paths.values())
    on_disk = json.loads(paths[OUTPUTS.summary].read_text())
    assert on_disk == summary and on_disk["run_id"] == sample.RUN_ID
    head = (summary["audit"]["transitions"], summary["audit"]["head_hash"])
    check = verify_log_bytes(paths[OUTPUTS.transitions].read_bytes(), head)
    assert check.ok and check.records == len(sample.STEPS)
    assert not list((tmp_path / "run").glob(".*"))  # no temp files left behind


def test_empty_run_has_a_genesis_head_and_valid_outputs(tmp_path):
    summary, _ = write_sample(tmp_path / "run", transitions=[], executions=[], conflicts=[],
                              rollbacks=[], signals=[])
    assert summary["audit"] == {"transitions": 0, "head_hash": GENESIS}
    assert validate_run_dir(tmp_path / "run") == []


def test_write_outputs_refuses_a_mismatched_run_id(tmp_path):
    with pytest.raises(ValueError, match="run_id"):
        write_sample(tmp_path / "run", health=sample.health() | {"run_id": "other"})


def test_a_stated_audit_head_must_be_the_head_of_the_written_chain(tmp_path):
    summary, _ = write_sample(tmp_path / "a")
    again, _ = write_sample(tmp_path / "b", summary=sample.summary() | {"audit": summary["audit"]})
    assert again["audit"] == summary["audit"]
    wrong = sample.summary() | {"audit": {"transitions": 3, "head_hash": GENESIS}}
    with pytest.raises(ValueError, match="not the head"):
        write_sample(tmp_path / "c", summary=wrong)


def test_out_that_is_a_file_is_an_environment_problem(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(EnvironmentProblem, match="not a directory"):
        write_sample(f)
    with pytest.raises(EnvironmentProblem, match="cannot create"):
        prepare_out_dir(f / "sub")


def test_unwritable_out_dir_is_an_environment_problem(tmp_path, monkeypatch):
    out = tmp_path / "ro"
    out.mkdir()

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(outputs.tempfile, "mkstemp", refuse)  # root ignores chmod: simulate EACCES
    with pytest.raises(EnvironmentProblem, match="not writable"):
        prepare_out_dir(out)


def test_a_directory_holding_a_run_is_never_overwritten(tmp_path):
    write_sample(tmp_path / "run")
    before = (tmp_path / "run" / OUTPUTS.transitions).read_bytes()
    with pytest.raises(EnvironmentProblem, match="already holds a run"):
        write_sample(tmp_path / "run")
    assert (tmp_path / "run" / OUTPUTS.transitions).read_bytes() == before


def test_validate_run_dir_reports_missing_and_broken_files(tmp_path):
    write_sample(tmp_path / "run")
    run = tmp_path / "run"
    (run / OUTPUTS.conflicts).unlink()
    with open(run / OUTPUTS.signals, "a") as fh:
        fh.write("{not json\n")
    problems = validate_run_dir(run)
    assert f"{OUTPUTS.conflicts}: missing" in problems
    assert any(p.startswith(f"{OUTPUTS.signals}:3: not valid JSON") for p in problems)


# -- atomic JSON, append-only JSONL ----------------------------------------


def test_atomic_write_replaces_the_whole_file(tmp_path):
    path = tmp_path / "doc.json"
    write_json_atomic(path, {"v": 1})
    write_json_atomic(path, {"v": 2, "text": "é"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"v": 2, "text": "é"}
    assert os.stat(path).st_mode & 0o777 == 0o644


@pytest.mark.parametrize("fail_at", ["replace", "fsync"])
def test_a_failed_atomic_write_leaves_the_old_content_and_no_temp_file(tmp_path, monkeypatch, fail_at):
    path = tmp_path / "doc.json"
    write_json_atomic(path, {"v": "old"})
    old = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs.os, fail_at, crash)
    with pytest.raises(OSError):
        write_json_atomic(path, {"v": "new" * 1000})
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.json"]


def test_a_value_json_cannot_hold_fails_before_touching_the_file(tmp_path):
    path = tmp_path / "doc.json"
    write_json_atomic(path, {"v": 1})
    with pytest.raises(ValueError):
        write_json_atomic(path, {"v": float("nan")})
    assert json.loads(path.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.json"]


def test_jsonl_writer_appends_one_canonical_line_per_record(tmp_path):
    path = tmp_path / "log.jsonl"
    with JsonlWriter(path) as w:
        w.append({"b": 1, "a": "x"})
        assert path.read_text() == '{"a":"x","b":1}\n'  # flushed as written
    with JsonlWriter(path) as w:
        w.append({"c": [1, 2]})
        assert w.lines == 1
        w.extend([{"d": None}, {"e": "\u2028"}])
        assert w.lines == 3
    assert path.read_text().split("\n") == ['{"a":"x","b":1}', '{"c":[1,2]}', '{"d":null}', '{"e":"\u2028"}', ""]
