"""Ctrl-C during a run: no new call starts, in-flight ones are awaited or marked, outputs flushed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

TOOLS = '''
import time
from interlock.adapters.registry import tool

@tool("slow.step")
def slow_step(n: int) -> dict:
    time.sleep(60 if n == 0 else 0)
    return {"n": n}
'''


def test_sigint_stops_starting_calls_and_flushes_outputs(tmp_path: Path) -> None:
    (tmp_path / "slow_tools.py").write_text(TOOLS)
    (tmp_path / "c.yaml").write_text("""schema_version: 1
tools:
  - {name: slow.step, risk: low, idempotent: false, timeout_s: 120,
     input_schema: {type: object, required: [n], properties: {n: {type: integer}}}}
""")
    steps = "\n".join(
        f"      - {{id: s{i}, tool: slow.step, confidence: 0.9, args: {{n: {i}}}"
        + (f", after: [s{i - 1}]" if i else "") + "}" for i in range(4))
    (tmp_path / "p.yaml").write_text(f"schema_version: 1\nplans:\n  - plan_id: p\n    agent_id: a\n    steps:\n{steps}\n")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "interlock"), "run", "--catalog", str(tmp_path / "c.yaml"),
         "--plans", str(tmp_path / "p.yaml"), "--live", "--tools", str(tmp_path / "slow_tools.py"),
         "--state-dir", str(tmp_path / "state"), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    db = tmp_path / "state" / "interlock.db"
    while time.monotonic() < deadline and not (db.exists() and db.stat().st_size > 0):
        time.sleep(0.1)
    time.sleep(1.5)  # s0 is running now (it sleeps 60 s)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode in (1, 130), stderr
    assert "Traceback" not in stderr
    summary = json.loads((out / "orchestration_summary.json").read_text())
    states = {c["call_id"]: c["final_state"] for c in summary["calls"]}
    # the LIVE, non-idempotent call in flight is marked, never guessed; nothing else started
    assert states["p/s0"] == "outcome_unknown"
    assert all(states[f"p/s{i}"] == "cancelled" for i in (1, 2, 3))
    execs = (out / "tool_execution_log.jsonl").read_text().splitlines()
    assert [json.loads(e)["call_id"] for e in execs] == ["p/s0"]
    assert subprocess.run([str(Path(sys.executable).parent / "interlock"), "verify-log", str(out)],
                          capture_output=True).returncode == 0
