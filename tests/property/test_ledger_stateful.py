"""The SQLite store against an oracle: I4 (the ledger) and I10 (the log).

Two connections to one file stand in for two processes; rules claim and
release keys for several calls and runs, commit steps (some chained wrong on
purpose), inject write failures and reopen connections, some closed cleanly
and some abandoned mid-life (a crash as far as the file can tell). The model
is a dict of holders and a list of committed lines per run.

- I4: each (tool, key) is held by at most one call, ever, unless the holder
  released it: a claim by anyone else returns the holder and changes nothing.
- I10: a run's stored log is exactly the steps that committed, in order; it
  verifies as a hash chain against the stored head; a failed or broken step
  leaves no trace, not even its records.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from interlock.adapters.store import FIRST_SEQ, RECORD_KINDS, SQLiteStore, StoreError, holder_label
from interlock.core.audit import GENESIS, canonical_json, chain_lines, verify_chain

TOOLS = ("pay", "ship")
KEYS = ("k1", "k2", "k3")
CALLS = ("c1", "c2", "c3", "c4")
RUNS = ("r1", "r2")
CONNS = st.integers(0, 1)
# The rules test logic, not the disk: on tmpfs an fsync costs nothing, so the
# run explores ten times more steps in the same time. SQLite behaves the same
# (WAL, locks, shared memory); durability across a kill is in the integration tests.
_FAST_DIR = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="interlock-ledger-", dir=_FAST_DIR))
        self.stores = [SQLiteStore.open(self.dir), SQLiteStore.open(self.dir)]
        self.abandoned: list[SQLiteStore] = []
        self.held: dict[tuple[str, str], tuple[str, str]] = {}  # the oracle ledger: key -> (call, run)
        self.logs: dict[str, list[dict]] = {}       # run -> committed lines
        self.recs: dict[str, list[tuple[str, dict]]] = {}  # run -> committed records
        self.steps = 0

    def teardown(self) -> None:
        for s in self.stores + self.abandoned:
            s.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _arm(self, conn: int, fail: bool) -> SQLiteStore:
        store = self.stores[conn]
        store.fail_on_write = store.write_count + 1 if fail else None
        return store

    # -- runs and steps -------------------------------------------------------------

    @rule(conn=CONNS, run=st.sampled_from(RUNS), fail=st.booleans())
    def create_run(self, conn: int, run: str, fail: bool) -> None:
        store = self._arm(conn, fail)
        if fail or run in self.logs:
            # an existing run is refused inside the transaction, before the injected failure
            with pytest.raises(StoreError, match="already exists" if run in self.logs else "injected"):
                store.create_run(run, digests={"plans": run}, meta={})
            return
        store.create_run(run, digests={"plans": run}, meta={})
        self.logs[run], self.recs[run] = [], []

    @precondition(lambda self: self.logs)
    @rule(conn=CONNS, data=st.data(), n=st.integers(0, 4),
          kinds=st.lists(st.sampled_from(RECORD_KINDS), max_size=3), fail=st.booleans())
    def commit_step(self, conn: int, data: st.DataObject, n: int, kinds: list[str], fail: bool) -> None:
        run = data.draw(st.sampled_from(sorted(self.logs)), label="run")
        log = self.logs[run]
        self.steps += 1
        head = log[-1]["hash"] if log else GENESIS
        lines = chain_lines([{"seq": FIRST_SEQ + len(log) + i, "run_id": run, "step": self.steps, "i": i}
                             for i in range(n)], head)
        records = [(kind, {"step": self.steps, "j": j}) for j, kind in enumerate(kinds)]
        store = self._arm(conn, fail)
        if fail:
            with pytest.raises(StoreError, match=r"write failed: disk full \(injected\)"):
                store.commit_step(run, transitions=lines, records=records)
            return
        store.commit_step(run, transitions=lines, records=records)
        log.extend(lines)
        self.recs[run].extend(records)

    @precondition(lambda self: any(self.logs.values()))
    @rule(conn=CONNS, data=st.data(), how=st.sampled_from(["gap", "fork", "wrong_prev", "reorder", "replay"]))
    def commit_broken_step(self, conn: int, data: st.DataObject, how: str) -> None:
        """A step that does not continue the stored head is refused whole."""
        run = data.draw(st.sampled_from(sorted(r for r, log in self.logs.items() if log)), label="run")
        log = self.logs[run]
        nxt = FIRST_SEQ + len(log)
        good = chain_lines([{"seq": nxt + i, "run_id": run, "bad": how} for i in range(2)], log[-1]["hash"])
        lines = {
            "gap": chain_lines([{"seq": nxt + 1, "run_id": run}], log[-1]["hash"]),
            "fork": chain_lines([{"seq": nxt - 1, "run_id": run}], log[-2]["hash"] if len(log) > 1 else GENESIS),
            "wrong_prev": chain_lines([{"seq": nxt, "run_id": run}], GENESIS),
            "reorder": good[::-1],
            "replay": log[-1:],  # the last committed line again (a resume that forgot it committed)
        }[how]
        with pytest.raises(StoreError, match="does not continue the log"):
            self.stores[conn].commit_step(run, transitions=lines, records=[("anomaly", {"bad": how})])

    # -- the ledger -----------------------------------------------------------------

    @rule(conn=CONNS, tool=st.sampled_from(TOOLS), key=st.sampled_from(KEYS), call=st.sampled_from(CALLS),
          run=st.sampled_from(RUNS), fail=st.booleans())
    def claim(self, conn: int, tool: str, key: str, call: str, run: str, fail: bool) -> None:
        store = self._arm(conn, fail)
        if fail:
            with pytest.raises(StoreError, match="injected"):
                store.claim(tool, key, call, run)
            return
        got = store.claim(tool, key, call, run)
        holder = self.held.get((tool, key))
        if holder is None:
            assert got is None, "a free key is claimed"
            self.held[(tool, key)] = (call, run)
        else:
            # The holder is (call, run): call ids repeat across runs.
            assert got == (None if holder == (call, run) else holder_label(*holder)), \
                "I4: a held key stays with its holder"

    @rule(conn=CONNS, tool=st.sampled_from(TOOLS), key=st.sampled_from(KEYS), call=st.sampled_from(CALLS),
          fail=st.booleans())
    def release(self, conn: int, tool: str, key: str, call: str, fail: bool) -> None:
        store = self._arm(conn, fail)
        if fail:
            with pytest.raises(StoreError, match="injected"):
                store.release(tool, key, call)
            return
        store.release(tool, key, call)
        if self.held.get((tool, key), (None,))[0] == call:
            del self.held[(tool, key)]

    # -- crashes ----------------------------------------------------------------------

    @rule(conn=CONNS, clean=st.booleans())
    def reopen(self, conn: int, clean: bool) -> None:
        """Close (clean) or abandon (crash: no close, no finish_run) a connection and open a new one."""
        old = self.stores[conn]
        if clean:
            old.close()
        else:
            self.abandoned.append(old)
        self.stores[conn] = SQLiteStore.open(self.dir)

    # -- invariants --------------------------------------------------------------------

    @invariant()
    def i4_ledger_is_the_oracle(self) -> None:
        for store in self.stores:
            assert store.started_keys() == {k: holder_label(*v) for k, v in self.held.items()}

    @invariant()
    def i10_log_is_exactly_the_committed_steps(self) -> None:
        store = self.stores[0]
        assert sorted(r["run_id"] for r in store.list_runs()) == sorted(self.logs)
        for run, log in self.logs.items():
            assert store.transitions(run) == log
            texts = store.transition_texts(run)
            assert texts == [canonical_json(line) for line in log]
            head = store.head(run)
            assert head == (len(log), log[-1]["hash"] if log else GENESIS)
            assert verify_chain(texts, head).ok
            for kind in RECORD_KINDS:
                assert store.records(run, kind) == [body for k, body in self.recs[run] if k == kind]


TestStoreMachine = StoreMachine.TestCase
