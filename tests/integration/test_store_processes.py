"""The store shared by real processes: claims race across processes (I4), two
writers cannot fork a run's log (I10), a lock held by another process is a
clear error, and a process killed right after a commit keeps that commit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from interlock.adapters.store import DB_NAME, FIRST_SEQ, MIGRATIONS, SQLiteStore, StoreError, holder_label
from interlock.core.audit import GENESIS, chain_lines, verify_chain

CLAIMER = """
import json, random, sys, time
from pathlib import Path
from interlock.adapters.store import SQLiteStore
state, me, go, n, seed = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
keys = [f"k{i}" for i in range(n)]
random.Random(seed).shuffle(keys)
with SQLiteStore.open(state, timeout_s=60) as s:
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    out = {k: s.claim("pay", k, me, "run-" + me) for k in keys}
    out["again"] = {k: s.claim("pay", k, me, "run-" + me) for k in keys[:5]}
print(json.dumps(out), flush=True)
"""

APPENDER = """
import json, sys, time
from pathlib import Path
from interlock.adapters.store import SQLiteStore, StoreError
from interlock.core.audit import chain_lines
state, me, go, n = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
refused = 0
with SQLiteStore.open(state, timeout_s=60) as s:
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    done = 0
    while done < n:
        count, head_hash = s.head("r1")
        line = chain_lines([{"seq": count, "writer": me, "i": done}], head_hash)[0]
        try:
            s.commit_step("r1", transitions=[line], records=[("signal", {"writer": me, "i": done})])
            done += 1
        except StoreError as exc:
            assert "does not continue the log" in str(exc), exc
            refused += 1
print(json.dumps({"refused": refused}), flush=True)
"""

HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("held", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""

CRASHER = """
import os, sys
from interlock.adapters.store import SQLiteStore
from interlock.core.audit import chain_lines
state, crash_at = sys.argv[1], int(sys.argv[2])

def on_write(n):
    if n == crash_at:
        os._exit(17)  # no close, no finally: as if the power went out after the commit

s = SQLiteStore.open(state, on_write=on_write)
s.create_run("r1", digests={}, meta={})                                  # 1
s.commit_step("r1", transitions=chain_lines([{"seq": 0, "x": 1}]))       # 2
s.claim("pay", "k1", "c1", "r1")                                         # 3
s.set_system_state("locked", "drill", "ops", 1.0)                        # 4
s.finish_run("r1", status="succeeded", exit_code=0)                      # 5
os._exit(0)
"""


def _start(script: str, *args: str, ready: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line == ready, f"child did not start: {line!r} {proc.stderr.read()}"
    return proc


def _finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out)


OPENER = """
import json, sys, time
from pathlib import Path
from interlock.adapters.store import SQLiteStore
state, go = sys.argv[1], Path(sys.argv[2])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
with SQLiteStore.open(state, timeout_s=60) as s:
    print(json.dumps({"version": s.schema_version}), flush=True)
"""


def test_processes_opening_a_fresh_state_dir_together_migrate_it_once(tmp_path):
    state, go = tmp_path / "state", tmp_path / "go"
    procs = [_start(OPENER, str(state), str(go), ready="ready") for _ in range(4)]
    go.touch()
    assert [_finish(p) for p in procs] == [{"version": len(MIGRATIONS)}] * 4
    with SQLiteStore.open(state) as s:
        assert s.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall() == [
            (str(len(MIGRATIONS)),)]
        assert s.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_concurrent_processes_claim_each_key_exactly_once(tmp_path):
    SQLiteStore.open(tmp_path).close()
    go = tmp_path / "go"
    n_keys, names = 150, ["A", "B", "C"]
    procs = {me: _start(CLAIMER, str(tmp_path), me, str(go), str(n_keys), str(seed), ready="ready")
             for seed, me in enumerate(names)}
    go.touch()
    results = {me: _finish(p) for me, p in procs.items()}
    with SQLiteStore.open(tmp_path) as s:
        held = s.started_keys()
    assert len(held) == n_keys
    for i in range(n_keys):
        key = f"k{i}"
        winners = [me for me in names if results[me][key] is None]
        assert len(winners) == 1, f"{key} claimed by {winners}"
        label = holder_label(winners[0], "run-" + winners[0])
        assert held[("pay", key)] == label
        for me in names:
            if me != winners[0]:
                assert results[me][key] == label, "a refused claim names the holder"
    for me in names:  # a second claim by the holder (a retry) is its own again; others still refused
        for key, answer in results[me]["again"].items():
            mine = held[("pay", key)] == holder_label(me, "run-" + me)
            assert answer == (None if mine else held[("pay", key)])


def test_two_writing_processes_cannot_fork_a_runs_log(tmp_path):
    with SQLiteStore.open(tmp_path) as s:
        s.create_run("r1", digests={}, meta={})
    go = tmp_path / "go"
    per_writer = 40
    procs = [_start(APPENDER, str(tmp_path), me, str(go), str(per_writer), ready="ready") for me in "AB"]
    go.touch()
    refused = sum(_finish(p)["refused"] for p in procs)
    print(f"stale-head commits refused: {refused}")
    with SQLiteStore.open(tmp_path) as s:
        lines = s.transitions("r1")
        assert verify_chain(lines, s.head("r1")).ok
        assert [l["seq"] for l in lines] == list(range(FIRST_SEQ, FIRST_SEQ + 2 * per_writer))
        for me in "AB":
            assert [l["i"] for l in lines if l["writer"] == me] == list(range(per_writer))
        # every committed line came with its record, in the same transaction
        assert [(r["writer"], r["i"]) for r in s.records("r1", "signal")] == [(l["writer"], l["i"]) for l in lines]


def test_a_lock_held_by_another_process_is_refused_after_the_timeout(tmp_path):
    with SQLiteStore.open(tmp_path) as s:
        s.create_run("r1", digests={}, meta={})
    db = tmp_path / DB_NAME
    before = db.read_bytes()
    with SQLiteStore.open(tmp_path, timeout_s=0.2) as opened_before:
        holder = _start(HOLDER, str(db), ready="held")
        try:
            with pytest.raises(StoreError, match="is locked by another process") as info:
                SQLiteStore.open(tmp_path, timeout_s=0.2)
            assert "waited 0.2 s" in str(info.value)
            with pytest.raises(StoreError, match="is locked by another process"):
                opened_before.claim("pay", "k1", "c1", "r1")
        finally:
            holder.stdin.write("\n")
            holder.stdin.flush()
            holder.communicate(timeout=60)
        assert db.read_bytes() == before
        assert opened_before.started_keys() == {}
        assert opened_before.claim("pay", "k1", "c1", "r1") is None  # the holder is gone


@pytest.mark.parametrize("crash_at", [1, 2, 3, 4, 5])
def test_a_process_killed_right_after_a_commit_keeps_exactly_the_committed_writes(tmp_path, crash_at):
    proc = subprocess.run([sys.executable, "-c", CRASHER, str(tmp_path), str(crash_at)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 17, proc.stderr
    with SQLiteStore.open(tmp_path) as s:
        run = s.get_run("r1")
        assert run is not None
        assert len(s.transitions("r1")) == (1 if crash_at >= 2 else 0)
        # the intent is on disk once claim() has returned, before any LIVE effect could start
        assert s.started_keys() == ({("pay", "k1"): "c1 (run r1)"} if crash_at >= 3 else {})
        assert s.system_state()["state"] == ("locked" if crash_at >= 4 else "unlocked")
        assert run["status"] == ("succeeded" if crash_at >= 5 else "running")
        if crash_at >= 2:
            assert verify_chain(s.transitions("r1"), s.head("r1")).ok
            assert s.head("r1") == (1, chain_lines([{"seq": 0, "x": 1}], GENESIS)[0]["hash"])
