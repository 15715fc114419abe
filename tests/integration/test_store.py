"""The SQLite store against a real file: migrations, refusals that leave the
file untouched, group-commit atomicity, chain continuity, ledger semantics."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from interlock.adapters import store as store_mod
from interlock.adapters.cli import EnvironmentProblem
from interlock.adapters.store import DB_NAME, FIRST_SEQ, MIGRATIONS, RECORD_KINDS, SQLiteStore, StoreError
from interlock.core.audit import GENESIS, canonical_json, chain_lines, verify_chain
from interlock.core.ports import IntentLedger


def chain(prev_hash: str, first_seq: int, n: int, tag: str = "c") -> list[dict]:
    """``n`` transition lines with seqs from ``first_seq``, chained onto ``prev_hash`` by the audit chain."""
    return chain_lines([
        {"schema_version": 1, "run_id": "r1", "seq": first_seq + i, "time": float(i), "machine": "call",
         "call_id": f"{tag}{i}", "plan_id": "p", "agent_id": "a", "from": "pending", "trigger": "dispatch",
         "to": "running_mock", "rule": "mock_fallback", "detail": {"i": i, "note": "é"}}
        for i in range(n)], prev_hash)


def sidecars(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name != DB_NAME)


@pytest.fixture
def store(tmp_path):
    with SQLiteStore.open(tmp_path / "state") as s:
        yield s


# -- opening and migrations ------------------------------------------------------------

def test_fresh_store_is_created_migrated_and_durable(tmp_path):
    state = tmp_path / "a" / "b" / ".interlock"
    with SQLiteStore.open(state) as s:
        assert (state / DB_NAME).is_file()
        assert s.schema_version == len(MIGRATIONS)
        assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert s.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        tables = {r[0] for r in s.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"meta", "runs", "transitions", "intents", "records", "system"} <= tables
        assert s.system_state() == {"state": "unlocked", "reason": None, "by": None, "time": None}
        assert s.list_runs() == [] and s.started_keys() == {}
    with SQLiteStore.open(state) as s:  # reopening an up-to-date store changes nothing
        assert s.schema_version == len(MIGRATIONS)


def test_an_empty_file_is_adopted_as_an_empty_store(tmp_path):
    """A crash while the file was being created leaves zero bytes: that is an empty database."""
    (tmp_path / DB_NAME).write_bytes(b"")
    with SQLiteStore.open(tmp_path) as s:
        assert s.schema_version == len(MIGRATIONS)


def test_newer_migrations_are_applied_in_order_and_keep_data(tmp_path, monkeypatch):
    with SQLiteStore.open(tmp_path) as s:
        s.create_run("r1", digests={"plans": "x"}, meta={})
        s.commit_step("r1", transitions=chain(GENESIS, FIRST_SEQ, 3))
    monkeypatch.setattr(store_mod, "MIGRATIONS", MIGRATIONS + [
        "CREATE TABLE notes (run_id TEXT, note TEXT);\nINSERT INTO notes VALUES ('r1', 'added by v2');",
        "ALTER TABLE notes ADD COLUMN flag INTEGER NOT NULL DEFAULT 3;",
    ])
    with SQLiteStore.open(tmp_path) as s:
        assert s.schema_version == len(MIGRATIONS) + 2
        assert s.conn.execute("SELECT run_id, note, flag FROM notes").fetchall() == [("r1", "added by v2", 3)]
        assert [l["seq"] for l in s.transitions("r1")] == [0, 1, 2]


def test_migration_2_keeps_records_and_accepts_every_kind(tmp_path, monkeypatch):
    """A version-1 store (records.kind under a CHECK without 'event') is rebuilt in place."""
    monkeypatch.setattr(store_mod, "MIGRATIONS", MIGRATIONS[:1])
    monkeypatch.setattr(store_mod, "RECORD_KINDS", RECORD_KINDS[:6])
    with SQLiteStore.open(tmp_path) as s:
        s.create_run("r1", digests={}, meta={})
        s.commit_step("r1", transitions=chain(GENESIS, FIRST_SEQ, 2),
                      records=[("execution", {"n": 1}), ("signal", {"n": 2}), ("execution", {"n": 3})])
        with pytest.raises(sqlite3.IntegrityError):
            s.conn.execute("INSERT INTO records VALUES ('r1', 'event', 1, '{}')")
    monkeypatch.undo()
    with SQLiteStore.open(tmp_path) as s:
        assert s.schema_version == len(MIGRATIONS) >= 2
        assert s.records("r1", "execution") == [{"n": 1}, {"n": 3}] and s.records("r1", "signal") == [{"n": 2}]
        s.commit_step("r1", records=[("event", {"e": 1}), ("execution", {"n": 4})])
        assert s.records("r1", "event") == [{"e": 1}]
        assert [r["n"] for r in s.records("r1", "execution")] == [1, 3, 4]
        assert s.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert s.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_failing_migration_leaves_the_store_at_its_old_version(tmp_path, monkeypatch):
    with SQLiteStore.open(tmp_path) as s:
        s.create_run("r1", digests={}, meta={})
    monkeypatch.setattr(store_mod, "MIGRATIONS", MIGRATIONS + [
        "CREATE TABLE half_done (x);\nINSERT INTO no_such_table VALUES (1);",
    ])
    with pytest.raises(StoreError, match="no such table"):
        SQLiteStore.open(tmp_path)
    monkeypatch.setattr(store_mod, "MIGRATIONS", MIGRATIONS)
    with SQLiteStore.open(tmp_path) as s:
        assert s.schema_version == len(MIGRATIONS)
        assert s.conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half_done'").fetchone()[0] == 0
        assert s.get_run("r1") is not None


# -- refusals: clear error, nothing written ------------------------------------------------

def _refused(state: Path, match: str, **kw) -> StoreError:
    db = state / DB_NAME
    before = db.read_bytes() if db.is_file() else None
    before_sidecars = sidecars(state)
    with pytest.raises(StoreError, match=match) as info:
        SQLiteStore.open(state, **kw)
    if before is not None:
        assert db.read_bytes() == before, "a refused file must be left exactly as it was"
    assert sidecars(state) == before_sidecars, "no -wal/-shm/-journal files appear beside a refused file"
    assert isinstance(info.value, EnvironmentProblem), "the CLI maps StoreError to exit 3"
    assert str(db) in str(info.value) or str(state) in str(info.value), "the message names the file"
    return info.value


def test_a_store_of_a_newer_schema_is_refused_untouched(tmp_path):
    with SQLiteStore.open(tmp_path) as s:
        s.create_run("r1", digests={}, meta={})
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(len(MIGRATIONS) + 1),))
    conn.commit()
    conn.close()
    err = _refused(tmp_path, "was written by a newer interlock")
    assert f"schema {len(MIGRATIONS) + 1} > {len(MIGRATIONS)}" in str(err)


def test_a_foreign_sqlite_database_is_refused_untouched(tmp_path):
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('ada')")
    conn.commit()
    conn.close()
    err = _refused(tmp_path, "is not an interlock store")
    assert "customers" in str(err)


@pytest.mark.parametrize("meta_ddl", [
    "CREATE TABLE meta (k TEXT, v TEXT)",  # a meta table of another shape
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",  # right shape, no rows
])
def test_a_foreign_database_with_a_meta_table_is_refused_untouched(tmp_path, meta_ddl):
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute(meta_ddl)
    conn.commit()
    conn.close()
    _refused(tmp_path, "is not an interlock store")


def test_a_foreign_wal_database_is_refused_untouched(tmp_path):
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    _refused(tmp_path, "is not an interlock store")


def test_random_bytes_are_refused_untouched(tmp_path):
    (tmp_path / DB_NAME).write_bytes(os.urandom(8192))
    _refused(tmp_path, r"is not an interlock store \(not an SQLite database\)")


def test_a_corrupt_sqlite_file_is_refused_untouched(tmp_path):
    with SQLiteStore.open(tmp_path) as s:
        s.create_run("r1", digests={}, meta={})
    db = tmp_path / DB_NAME
    data = bytearray(db.read_bytes())
    data[100:4096] = os.urandom(4096 - 100)  # keep the magic header, trash the schema page
    db.write_bytes(bytes(data))
    _refused(tmp_path, "corrupt or not an interlock store")


def test_a_directory_where_the_file_should_be_is_refused(tmp_path):
    (tmp_path / DB_NAME).mkdir()
    _refused(tmp_path, "is a directory")


def test_a_state_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "state").write_text("not a dir")
    with pytest.raises(StoreError, match="is not a directory"):
        SQLiteStore.open(tmp_path / "state")
    assert (tmp_path / "state").read_text() == "not a dir"


# Read-only: permissions do not stop root, and these tests run as root here.
# So the opener runs in a child process: as root, started through util-linux
# ``setpriv`` with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH removed, which makes
# root obey file modes like any user; as another user, unchanged. Either way the
# permissions are real, nothing is simulated.
_OPEN_SCRIPT = """
import json, sys
from interlock.adapters.store import SQLiteStore, StoreError
try:
    SQLiteStore.open(sys.argv[1], timeout_s=0.5).close()
    print(json.dumps({"ok": True}))
except StoreError as exc:
    print(json.dumps({"ok": False, "error": str(exc)}))
"""


def _open_without_privileges(state: Path) -> dict:
    argv = [sys.executable, "-c", _OPEN_SCRIPT, str(state)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without util-linux setpriv: cannot make permissions bite")
        argv = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all", *argv]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def restore_modes(tmp_path):
    yield tmp_path
    for p in [tmp_path, *tmp_path.rglob("*")]:
        if p.is_dir():
            p.chmod(0o755)


def test_a_read_only_state_dir_is_refused_untouched(restore_modes):
    state = restore_modes / "state"
    with SQLiteStore.open(state) as s:
        s.create_run("r1", digests={}, meta={})
    state.chmod(0o555)
    before = (state / DB_NAME).read_bytes()
    res = _open_without_privileges(state)
    assert res == {"ok": False, "error": f"state directory {state} is read-only; "
                                         "make it writable or use another --state-dir"}
    assert (state / DB_NAME).read_bytes() == before and sidecars(state) == []


def test_a_read_only_store_file_is_refused_untouched(restore_modes):
    state = restore_modes / "state"
    with SQLiteStore.open(state) as s:
        s.create_run("r1", digests={}, meta={})
    (state / DB_NAME).chmod(0o444)
    before = (state / DB_NAME).read_bytes()
    res = _open_without_privileges(state)
    assert not res["ok"] and res["error"].startswith(f"{state / DB_NAME} is read-only")
    assert (state / DB_NAME).read_bytes() == before and sidecars(state) == []


def test_a_state_dir_that_cannot_be_created_is_refused(restore_modes):
    parent = restore_modes / "parent"
    parent.mkdir()
    parent.chmod(0o555)
    res = _open_without_privileges(parent / "state")
    assert not res["ok"] and res["error"].startswith(f"cannot create state directory {parent / 'state'}")
    assert list(parent.iterdir()) == []


def test_the_unprivileged_opener_does_open_a_writable_state_dir(tmp_path):
    """The control for the three tests above: the same child opens a store when permitted."""
    assert _open_without_privileges(tmp_path / "state") == {"ok": True}
    assert (tmp_path / "state" / DB_NAME).is_file()


# -- locked by another connection --------------------------------------------------------

def test_open_waits_then_refuses_a_database_held_by_another_writer(tmp_path):
    with SQLiteStore.open(tmp_path) as s:
        s.create_run("r1", digests={}, meta={})
    holder = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        err = _refused(tmp_path, "is locked by another process", timeout_s=0.2)
        assert "waited 0.2 s" in str(err)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with SQLiteStore.open(tmp_path, timeout_s=0.2) as s:  # once released, it opens
        assert s.get_run("r1") is not None


def test_a_write_refused_while_locked_changes_nothing_and_the_store_stays_usable(tmp_path):
    with SQLiteStore.open(tmp_path, timeout_s=0.2) as s:
        s.create_run("r1", digests={}, meta={})
        holder = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StoreError, match="is locked by another process"):
                s.claim("pay", "k1", "c1", "r1")
            with pytest.raises(StoreError, match="is locked by another process"):
                s.commit_step("r1", transitions=chain(GENESIS, FIRST_SEQ, 2))
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert s.started_keys() == {} and s.transitions("r1") == []
        assert s.claim("pay", "k1", "c1", "r1") is None
        s.commit_step("r1", transitions=chain(GENESIS, FIRST_SEQ, 2))
        assert s.head("r1")[0] == 2


# -- group commit -------------------------------------------------------------------------

def test_a_step_is_committed_whole_with_its_records(store):
    store.create_run("r1", digests={"catalog": "c", "plans": "p", "policy": "q"}, meta={"who": "t"})
    lines = chain(GENESIS, FIRST_SEQ, 5)
    store.commit_step("r1", transitions=lines, records=[
        ("execution", {"call_id": "c0", "outcome": "succeeded"}),
        ("conflict", {"id": "x1"}),
        ("execution", {"call_id": "c1", "outcome": "failed"}),
    ])
    assert store.transitions("r1") == lines
    assert store.records("r1", "execution") == [{"call_id": "c0", "outcome": "succeeded"},
                                                {"call_id": "c1", "outcome": "failed"}]
    assert store.records("r1", "conflict") == [{"id": "x1"}]
    assert store.records("r1", "rollback") == []
    run = store.get_run("r1")
    assert (run["head_seq"], run["head_hash"]) == (4, lines[-1]["hash"])
    assert store.head("r1") == (5, lines[-1]["hash"])
    assert store.transition_texts("r1") == [canonical_json(l) for l in lines]
    assert verify_chain(store.transition_texts("r1"), store.head("r1")).ok
    assert run["digests"] == {"catalog": "c", "plans": "p", "policy": "q"} and run["status"] == "running"
    more = chain(lines[-1]["hash"], 5, 2)
    store.commit_step("r1", transitions=more, records=[("execution", {"call_id": "c2"})])
    assert store.transitions("r1", after=4) == more
    assert [r["call_id"] for r in store.records("r1", "execution")] == ["c0", "c1", "c2"]
    rows = store.conn.execute("SELECT seq FROM records WHERE run_id = 'r1' AND kind = 'execution' ORDER BY seq")
    assert [r[0] for r in rows] == [1, 2, 3]


def test_an_injected_failure_mid_step_leaves_nothing_of_the_step(tmp_path):
    with SQLiteStore.open(tmp_path) as s:
        s.create_run("r1", digests={}, meta={})
        first = chain(GENESIS, FIRST_SEQ, 3)
        s.commit_step("r1", transitions=first, records=[("execution", {"n": 1})])
        s.fail_on_write = s.write_count + 1
        step = chain(first[-1]["hash"], 3, 100)
        with pytest.raises(StoreError, match=r"write failed: disk full \(injected\)"):
            s.commit_step("r1", transitions=step, records=[("execution", {"n": 2}), ("anomaly", {"a": 1})])
        assert s.transitions("r1") == first
        assert s.records("r1", "execution") == [{"n": 1}] and s.records("r1", "anomaly") == []
        assert s.head("r1") == (3, first[-1]["hash"])
        s.commit_step("r1", transitions=step)  # the same step, retried, goes through
    with SQLiteStore.open(tmp_path) as s:
        assert len(s.transitions("r1")) == 103
        assert verify_chain(s.transitions("r1"), s.head("r1")).ok
        assert s.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_on_write_counts_every_write_transaction_and_fail_on_write_the_attempts(tmp_path):
    seen = []
    with SQLiteStore.open(tmp_path, on_write=seen.append, fail_on_write=4) as s:
        s.create_run("r1", digests={}, meta={})                       # 1
        s.commit_step("r1", transitions=chain(GENESIS, FIRST_SEQ, 1))  # 2
        assert s.claim("t", "k", "c1", "r1") is None                  # 3
        with pytest.raises(StoreError, match="injected"):
            s.claim("t", "k2", "c1", "r1")                             # 4: fails, rolled back
        assert s.claim("t", "k", "c2", "r1") == "c1 (run r1)"         # 5: refused claim is a write too
        s.release("t", "k", "c1")                                      # 6
        s.set_system_state("locked", "drill", "ops", 12.5)            # 7
        s.finish_run("r1", status="succeeded", exit_code=0)           # 8
        assert seen == [1, 2, 3, 5, 6, 7, 8] and s.write_count == 8
        assert s.started_keys() == {}


def test_the_chain_must_continue_the_stored_head(store):
    store.create_run("r1", digests={}, meta={})
    lines = chain(GENESIS, FIRST_SEQ, 3)
    with pytest.raises(StoreError, match="expected seq 0"):
        store.commit_step("r1", transitions=lines[1:])                     # starts mid-chain
    store.commit_step("r1", transitions=lines)
    bad = [
        chain(lines[-1]["hash"], 4, 1),                                     # a gap
        chain(lines[-2]["hash"], 2, 1),                                     # rewrites seq 2 (a fork)
        chain(GENESIS, 3, 1),                                               # right seq, wrong prev_hash
        chain(lines[-1]["hash"], 3, 2)[::-1],                               # reordered
        [{**chain(lines[-1]["hash"], 3, 1)[0], "seq": "3"}],                # seq of the wrong type
        [{**chain(lines[-1]["hash"], 3, 1)[0], "seq": True}],               # a bool is not a seq
        [{k: v for k, v in chain(lines[-1]["hash"], 3, 1)[0].items() if k != "hash"}],  # no hash
    ]
    for step in bad:
        with pytest.raises(StoreError, match="run 'r1': transition"):
            store.commit_step("r1", transitions=step, records=[("execution", {"x": 1})])
    assert store.transitions("r1") == lines and store.records("r1", "execution") == []
    ok = chain(lines[-1]["hash"], 3, 2)
    store.commit_step("r1", transitions=ok)
    assert store.get_run("r1")["head_hash"] == ok[-1]["hash"]


def test_a_second_writer_with_a_stale_head_cannot_fork_the_log(tmp_path):
    with SQLiteStore.open(tmp_path) as a, SQLiteStore.open(tmp_path) as b:
        a.create_run("r1", digests={}, meta={})
        base = chain(GENESIS, FIRST_SEQ, 2)
        a.commit_step("r1", transitions=base)
        head = b.get_run("r1")["head_hash"]
        a.commit_step("r1", transitions=chain(head, 2, 1, tag="a"))
        with pytest.raises(StoreError, match="does not continue the log"):
            b.commit_step("r1", transitions=chain(head, 2, 1, tag="b"))
        assert [l["call_id"] for l in b.transitions("r1")] == ["c0", "c1", "a0"]


def test_steps_for_unknown_runs_or_kinds_are_refused(store):
    with pytest.raises(StoreError, match="unknown run 'nope'"):
        store.commit_step("nope", transitions=chain(GENESIS, FIRST_SEQ, 1))
    store.create_run("r1", digests={}, meta={})
    with pytest.raises(ValueError, match="record kind 'gossip'"):
        store.commit_step("r1", transitions=chain(GENESIS, FIRST_SEQ, 1), records=[("gossip", {})])
    assert store.transitions("r1") == []


# -- runs and lock state -----------------------------------------------------------------

def test_runs_lifecycle(tmp_path):
    clock = itertools.count(10.0, 10.0)
    with SQLiteStore.open(tmp_path, now=lambda: next(clock)) as s:
        s.create_run("r2", digests={"plans": "p2"}, meta={"argv": ["run"]})
        s.create_run("r1", digests={"plans": "p1"}, meta={})
        with pytest.raises(StoreError, match="run 'r1' already exists"):
            s.create_run("r1", digests={}, meta={})
        s.finish_run("r2", status="failed", exit_code=1)
        with pytest.raises(StoreError, match="unknown run 'r3'"):
            s.finish_run("r3", status="failed", exit_code=1)
        assert [(r["run_id"], r["created"], r["status"], r["exit_code"]) for r in s.list_runs()] == [
            ("r2", 10.0, "failed", 1), ("r1", 20.0, "running", None)]
        assert s.get_run("r2")["meta"] == {"argv": ["run"]} and s.get_run("r3") is None
        assert s.get_run("r1")["head_hash"] == GENESIS and s.head("r1") == (0, GENESIS)


def test_lock_state_is_durable_and_validated(tmp_path):
    with SQLiteStore.open(tmp_path) as s:
        s.set_system_state("locked", "unsafe_escalation", "monitor", 42.0)
        with pytest.raises(ValueError, match="'jammed'"):
            s.set_system_state("jammed", "x", "y", 1.0)
    with SQLiteStore.open(tmp_path) as s:
        assert s.system_state() == {"state": "locked", "reason": "unsafe_escalation", "by": "monitor",
                                    "time": 42.0}
        s.set_system_state("unlocked", "reviewed", "alice", 50.0)
        assert s.system_state()["state"] == "unlocked"


# -- the ledger ----------------------------------------------------------------------------

def test_claim_semantics(store):
    assert isinstance(store, IntentLedger)
    assert store.claim("pay", "order-1", "c1", "r1") is None               # new claim
    assert store.claim("pay", "order-1", "c1", "r1") is None               # same call, same run: retry/resume
    assert store.claim("pay", "order-1", "c1", "r2") == "c1 (run r1)"      # same id, later run: duplicate (I4)
    assert store.claim("pay", "order-1", "c2", "r1") == "c1 (run r1)"      # a duplicate is refused
    assert store.claim("refund", "order-1", "c2", "r1") is None            # keys are per tool
    assert store.intent("pay", "order-1")["call_id"] == "c1"
    assert store.intent("pay", "order-1")["run_id"] == "r1"                # the first claim's run
    assert store.intent("pay", "order-2") is None
    store.release("pay", "order-1", "c2")                                   # not the holder: no effect
    assert store.started_keys() == {("pay", "order-1"): "c1 (run r1)", ("refund", "order-1"): "c2 (run r1)"}
    store.release("pay", "order-1", "c1")                                   # the holder gives it back
    assert store.claim("pay", "order-1", "c2", "r1") is None
    assert store.started_keys() == {("pay", "order-1"): "c2 (run r1)", ("refund", "order-1"): "c2 (run r1)"}


def test_everything_persists_across_reopen(tmp_path):
    lines = chain(GENESIS, FIRST_SEQ, 4)
    with SQLiteStore.open(tmp_path) as s:
        s.create_run("r1", digests={"policy": "d"}, meta={})
        s.commit_step("r1", transitions=lines, records=[("rollback", {"call_id": "c0"})])
        s.claim("pay", "k", "c1", "r1")
        s.set_system_state("locked", "drill", "ops", 1.0)
    # no finish_run: the process "crashed" after its last commit
    with SQLiteStore.open(tmp_path) as s:
        run = s.get_run("r1")
        assert run["status"] == "running" and run["head_seq"] == 3 and run["head_hash"] == lines[-1]["hash"]
        assert s.transitions("r1") == lines
        assert s.records("r1", "rollback") == [{"call_id": "c0"}]
        assert s.claim("pay", "k", "c2", "r2") == "c1 (run r1)"
        assert s.claim("pay", "k", "c1", "r2") == "c1 (run r1)"  # same call id, later run: a duplicate (I4)
        assert s.system_state()["state"] == "locked"
        s.commit_step("r1", transitions=chain(lines[-1]["hash"], 4, 1))  # the resume continues the chain


def test_a_closed_store_says_so(tmp_path):
    s = SQLiteStore.open(tmp_path)
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreError, match="the store is closed"):
        s.started_keys()
