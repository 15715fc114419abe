"""The CLI as a new user runs it: subprocesses, real files, real tools."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from interlock.adapters.loading import load_inputs
from output_invariants import check_run_dir

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
INTERLOCK = str(Path(sys.executable).parent / "interlock")
FS = ["--catalog", str(EX / "fs/catalog.yaml"), "--plans", str(EX / "fs/plans.yaml"),
      "--policy", str(EX / "fs/policy.yaml")]
TOOLS = ["--tools", str(EX / "tools/fs_tools.py"), "--tools", str(EX / "tools/release_tools.py")]
SEED = {"VERSION": "1.1.0\n", "README.md": "# Demo\n", "config.yaml": "retries: 3\n",
        "CHANGELOG.md": "# Changelog\n", "cache/build.tmp": "stale\n"}


def workspace(root: Path) -> Path:
    for rel, text in SEED.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def cli(*args: str, ws: Path | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "INTERLOCK_WORKSPACE": str(ws) if ws else ""}
    return subprocess.run([INTERLOCK, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300, stdin=subprocess.DEVNULL)


def test_fs_demo_run_keeps_every_invariant_on_its_outputs(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws")
    out = tmp_path / "out"
    proc = cli("run", *FS, *TOOLS, "--approvals", str(EX / "fs/approvals.yaml"),
               "--state-dir", str(tmp_path / "state"), "--out", str(out), ws=ws)
    assert proc.returncode == 1, proc.stderr  # a plan fails on purpose
    assert "Traceback" not in proc.stderr
    inputs = load_inputs(EX / "fs/catalog.yaml", EX / "fs/plans.yaml", EX / "fs/policy.yaml")
    assert check_run_dir(out, inputs.catalog, inputs.plans) == []
    summary = json.loads((out / "orchestration_summary.json").read_text())
    calls = {c["call_id"]: c for c in summary["calls"]}
    # the saga restored the real file; the approved tag ran LIVE; the denied publish fell to DRY_RUN
    assert (ws / "config.yaml").read_text() == SEED["config.yaml"]
    assert calls["hotfix/config"]["final_state"] == "rolled_back"
    assert calls["release-1.2.0/tag"]["mode"] == "live" and calls["release-1.2.0/tag"]["approved_by"] == "alice"
    assert calls["release-1.2.0/publish"]["mode"] == "dry_run"
    assert calls["cleanup-b/rm-cache"]["final_state"] == "cancelled"
    types = {c["type"] for c in json.loads((out / "tool_conflicts.json").read_text())["conflicts"]}
    assert {"write_write", "duplicate_irreversible"} <= types
    # the audit tools agree
    assert cli("verify-log", str(out)).returncode == 0
    rep = cli("replay", str(out))
    assert rep.returncode == 0, rep.stdout + rep.stderr


def test_deterministic_mode_gives_byte_identical_outputs(tmp_path: Path) -> None:
    outs = []
    for i in (1, 2):
        ws = workspace(tmp_path / f"ws{i}")
        out = tmp_path / f"out{i}"
        proc = cli("run", *FS, *TOOLS, "--approvals", str(EX / "fs/approvals.yaml"), "--fake-clock",
                   "--seed", "7", "--state-dir", str(tmp_path / f"state{i}"), "--out", str(out), ws=ws)
        assert proc.returncode == 1, proc.stderr
        outs.append(out)
    for name in sorted(p.name for p in outs[0].iterdir()):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_default_policy_runs_nothing_live(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws")
    out = tmp_path / "out"
    proc = cli("run", "--catalog", str(EX / "fs/catalog.yaml"), "--plans", str(EX / "fs/plans.yaml"),
               *TOOLS, "--state-dir", str(tmp_path / "state"), "--out", str(out), ws=ws)
    assert proc.returncode in (0, 1), proc.stderr
    summary = json.loads((out / "orchestration_summary.json").read_text())
    assert "live" not in summary["counts"]["by_mode"]
    assert (ws / "config.yaml").read_text() == SEED["config.yaml"]  # nothing was touched


def test_lock_blocks_live_in_the_next_run(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    assert cli("lock", "--reason", "drill", "--by", "ops", "--state-dir", state).returncode == 0
    ws = workspace(tmp_path / "ws")
    out = tmp_path / "out"
    proc = cli("run", *FS, *TOOLS, "--state-dir", state, "--out", str(out), ws=ws)
    assert proc.returncode in (0, 1), proc.stderr
    summary = json.loads((out / "orchestration_summary.json").read_text())
    assert summary["lock"]["state"] == "locked"
    assert set(summary["counts"]["by_mode"]) == {"mock"}  # lock_mode: mock_only
    inputs = load_inputs(EX / "fs/catalog.yaml", EX / "fs/plans.yaml", EX / "fs/policy.yaml")
    assert check_run_dir(out, inputs.catalog, inputs.plans) == []
    assert cli("unlock", "--reason", "drill over", "--by", "ops", "--state-dir", state).returncode == 0


def test_a_second_run_never_repeats_an_irreversible_live_call(tmp_path: Path) -> None:
    catalog = tmp_path / "c.yaml"
    catalog.write_text("""schema_version: 1
tools:
  - {name: fs.delete_file, risk: low, reversible: false, supports_dry_run: true,
     input_schema: {type: object, required: [path], properties: {path: {type: string}}}}
""")
    plans = tmp_path / "p.yaml"
    plans.write_text("""schema_version: 1
plans:
  - {plan_id: p, agent_id: a, steps: [{id: rm, tool: fs.delete_file, confidence: 0.9, args: {path: x.txt}}]}
""")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "x.txt").write_text("x")
    base = ["--catalog", str(catalog), "--plans", str(plans), "--live", "--tools",
            str(EX / "tools/fs_tools.py"), "--state-dir", str(tmp_path / "state")]
    first = cli("run", *base, "--out", str(tmp_path / "o1"), ws=ws)
    assert first.returncode == 0, first.stderr
    (ws / "x.txt").write_text("x again")
    second = cli("run", *base, "--out", str(tmp_path / "o2"), ws=ws)
    assert second.returncode == 1
    assert (ws / "x.txt").exists()  # the ledger said: already started live in an earlier run
    s = json.loads((tmp_path / "o2" / "orchestration_summary.json").read_text())
    assert s["calls"][0]["final_state"] == "cancelled"


@pytest.mark.parametrize("setup, code", [
    (lambda d: None, 2),                                               # missing files
    (lambda d: (d / "c.yaml").write_bytes(b"\xff\xfe bad"), 2),        # not UTF-8
    (lambda d: (d / "c.yaml").write_text("tools: [\n"), 2),            # broken YAML
])
def test_bad_input_exits_2_without_traceback_and_runs_nothing(tmp_path: Path, setup, code) -> None:
    setup(tmp_path)
    proc = cli("run", "--catalog", str(tmp_path / "c.yaml"), "--plans", str(tmp_path / "p.yaml"),
               "--out", str(tmp_path / "out"), "--state-dir", str(tmp_path / "state"))
    assert proc.returncode == code
    assert "Traceback" not in proc.stderr and proc.stderr.strip()
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file_is_an_environment_error(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("x")
    proc = cli("run", *FS, "--out", str(tmp_path / "out"), "--state-dir", str(tmp_path / "state"))
    assert proc.returncode == 3 and "not a directory" in proc.stderr


def test_verify_log_checks_the_store_itself_and_finds_an_edit(tmp_path: Path) -> None:
    import sqlite3

    ws = workspace(tmp_path / "ws")
    state = tmp_path / "state"
    assert cli("run", *FS, *TOOLS, "--state-dir", str(state), "--out", str(tmp_path / "out"),
               ws=ws).returncode in (0, 1)
    run_id = json.loads((tmp_path / "out/orchestration_summary.json").read_text())["run_id"]
    ok = cli("verify-log", "--state-dir", str(state), "--run", run_id)
    assert ok.returncode == 0 and ok.stdout.startswith("ok:"), ok.stdout + ok.stderr
    assert cli("lock", "--reason", "r", "--by", "b", "--state-dir", str(state)).returncode == 0
    assert cli("verify-log", "--state-dir", str(state), "--run", "system").returncode == 0
    db = sqlite3.connect(state / "interlock.db")
    db.execute("UPDATE transitions SET line = replace(line, '\"running_live\"', '\"running_mock\"') "
               "WHERE run_id = ? AND seq = (SELECT MIN(seq) FROM transitions WHERE run_id = ? "
               "AND line LIKE '%running_live%')", (run_id, run_id))
    db.commit()
    db.close()
    bad = cli("verify-log", "--state-dir", str(state), "--run", run_id)
    assert bad.returncode == 1 and "tampered" in bad.stdout
