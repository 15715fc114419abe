"""``interlock verify-log`` and ``interlock replay`` on real run directories (files on disk)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from interlock.adapters.cli import main
from interlock.adapters.outputs import OUTPUTS, write_outputs
from tests import audit_samples as sample


@pytest.fixture
def run_dir(tmp_path):
    out = tmp_path / "run"
    write_outputs(
        out, run_id=sample.RUN_ID, summary=sample.summary(), health=sample.health(),
        transitions=sample.transitions(), executions=sample.executions(), conflicts=sample.conflicts(),
        rollbacks=sample.rollbacks(), signals=sample.signals(),
    )
    return out


def log_lines(run_dir):
    return (run_dir / OUTPUTS.transitions).read_text().splitlines(keepends=True)


def set_log(run_dir, lines):
    (run_dir / OUTPUTS.transitions).write_text("".join(lines))


def test_verify_log_ok(run_dir, capsys):
    assert main(["verify-log", str(run_dir)]) == 0
    head = json.loads((run_dir / OUTPUTS.summary).read_text())["audit"]["head_hash"]
    assert capsys.readouterr().out == f"ok: {len(sample.STEPS)} records, head {head}\n"


def test_verify_log_names_the_edited_line_and_seq(run_dir, capsys):
    lines = log_lines(run_dir)
    lines[5] = lines[5].replace('"succeeded"', '"failed"')
    set_log(run_dir, lines)
    assert main(["verify-log", str(run_dir)]) == 1
    assert capsys.readouterr().out == "tampered: record at line 6 (seq 5): hash mismatch: the record was edited\n"


def test_verify_log_detects_truncation_with_the_head_from_a_summary(run_dir, tmp_path, capsys):
    log = tmp_path / "copy.jsonl"
    log.write_text("".join(log_lines(run_dir)[:-2]))
    assert main(["verify-log", str(log)]) == 0  # no head: a clean cut is invisible, and it says so
    captured = capsys.readouterr()
    assert captured.out.startswith(f"ok: {len(sample.STEPS) - 2} records") and "unnoticed" in captured.err
    summary = run_dir / OUTPUTS.summary
    assert main(["verify-log", str(log), "--head-from", str(summary)]) == 1
    n = len(sample.STEPS)
    assert capsys.readouterr().out.startswith(f"tampered: record at line {n - 1} (seq {n - 2}): missing")


def test_verify_log_unparseable_line(run_dir, capsys):
    lines = log_lines(run_dir)
    lines[2] = "garbage\n"
    set_log(run_dir, lines)
    assert main(["verify-log", str(run_dir)]) == 1
    assert capsys.readouterr().out.startswith("tampered: record at line 3 (seq ?): line 3 is not valid JSON")


def test_verify_log_bad_paths_and_heads_exit_2(run_dir, tmp_path, capsys):
    assert main(["verify-log", str(tmp_path / "nowhere")]) == 2
    bad = tmp_path / "summary.json"
    bad.write_text(json.dumps({"audit": {"transitions": "twelve", "head_hash": "x"}}))
    assert main(["verify-log", str(run_dir), "--head-from", str(bad)]) == 2
    assert "/audit/transitions" in capsys.readouterr().err


def test_replay_matches(run_dir, capsys):
    assert main(["replay", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "replayed 12 transitions of 3 calls (lock: locked)" in out
    assert "  rolled_back  1\n" in out and out.endswith("final states: match\nmetrics: match\n")


def test_replay_reports_a_summary_that_disagrees(run_dir, capsys):
    path = run_dir / OUTPUTS.summary
    summary = json.loads(path.read_text())
    summary["calls"][0]["final_state"] = "succeeded"
    path.write_text(json.dumps(summary))
    assert main(["replay", str(run_dir)]) == 1
    out = capsys.readouterr().out
    assert "final states: 1 difference(s):" in out
    assert "call p1/a: summary says succeeded, the log replays to rolled_back" in out


def test_replay_reports_invalid_transitions(run_dir, capsys):
    lines = log_lines(run_dir)
    del lines[3]  # p1/a never released: its dispatch leaves a state it is not in
    set_log(run_dir, lines)
    assert main(["replay", str(run_dir)]) == 1
    assert "seq 4: call p1/a: leaves ready but the replay has it in waiting" in capsys.readouterr().out


def test_replay_without_run_files_exits_2(tmp_path, run_dir, capsys):
    assert main(["replay", str(tmp_path / "nowhere")]) == 2
    (run_dir / OUTPUTS.summary).unlink()
    assert main(["replay", str(run_dir)]) == 2
    assert "missing orchestration_summary.json" in capsys.readouterr().err


def test_commands_run_as_a_user_runs_them(run_dir):
    proc = subprocess.run([sys.executable, "-m", "interlock.adapters.cli", "verify-log", str(run_dir)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.startswith("ok: 12 records")
