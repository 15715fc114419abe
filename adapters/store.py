"""The durable event store: SQLite, the embedded default (SPEC section 10).

One file, ``<state_dir>/interlock.db`` (``--state-dir``, default ``.interlock/``):

- ``transitions``: every run's hash-chained transition log, the source of
  truth; the JSONL outputs are exports of it (I10).
- ``intents``: the irreversible-intent ledger, UNIQUE (tool, key) (I4).
- ``runs``, ``records`` (execution, conflict, rollback, signal, anomaly and
  approval records, numbered per run and kind) and ``system`` (the operator
  lock, which outlives runs).

Durability: WAL with ``synchronous=FULL``, so a transaction is on disk when
COMMIT returns. Group commit: everything one orchestrator step produced is
one transaction (``commit_step``). A claim is its own transaction, committed
before ``claim`` returns, hence before the LIVE side effect it guards starts.

Refusals leave the file as it was: a file that is not ours, or was written
by a newer interlock, is recognised through a read-only connection before
anything is written, and checked again under the write lock before migrating.

Threads and processes: one ``SQLiteStore`` is one sqlite3 connection, to be
used from the thread that opened it (sqlite3 enforces this). Several
processes may share a state directory: writes serialise on SQLite's file
lock, each waiting at most ``timeout_s`` before a clear "locked" error.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import orjson

from interlock.adapters.cli import EnvironmentProblem
from interlock.core.audit import GENESIS, canonical_json

__all__ = [
    "DB_NAME", "FIRST_SEQ", "MIGRATIONS", "RECORD_KINDS", "SYSTEM_STATES",
    "SQLiteStore", "StoreError",
]

DB_NAME = "interlock.db"
APPLICATION = "interlock"
#: The first transition of a run has this seq and ``prev_hash == GENESIS``
#: (as ``interlock.core.audit.verify_chain`` expects: seq = 0-based line index).
FIRST_SEQ = 0
#: What ``records`` holds besides the log: the raw material of the outputs, and
#: ``event``, the orchestrator's inputs in order (a resume replays them).
RECORD_KINDS = ("execution", "conflict", "rollback", "signal", "anomaly", "approval", "event")
SYSTEM_STATES = ("unlocked", "locked")

#: Schema migrations, applied in order, each in the same transaction as the
#: ``schema_version`` bump; ``len(MIGRATIONS)`` is the version this code writes.
#: Append only: a released migration is never edited.
MIGRATIONS: list[str] = [
    # 1: the initial schema.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('application', 'interlock');
    INSERT INTO meta (key, value) VALUES ('schema_version', '0');
    CREATE TABLE runs (
        run_id    TEXT PRIMARY KEY,
        created   REAL NOT NULL,
        status    TEXT NOT NULL,
        digests   TEXT NOT NULL,          -- JSON: catalog/plans/policy digests
        head_seq  INTEGER NOT NULL,       -- seq of the last transition, -1 when none
        head_hash TEXT NOT NULL,          -- its hash, GENESIS when none
        exit_code INTEGER,
        meta      TEXT NOT NULL           -- JSON
    );
    CREATE TABLE transitions (
        run_id TEXT NOT NULL REFERENCES runs (run_id),
        seq    INTEGER NOT NULL,
        line   TEXT NOT NULL,             -- JSON: the output line, prev_hash and hash included
        hash   TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE intents (
        tool    TEXT NOT NULL,
        key     TEXT NOT NULL,
        call_id TEXT NOT NULL,
        run_id  TEXT NOT NULL,            -- no foreign key: an intent outlives its run
        created REAL NOT NULL,
        UNIQUE (tool, key)
    );
    CREATE TABLE records (
        run_id TEXT NOT NULL REFERENCES runs (run_id),
        kind   TEXT NOT NULL CHECK (kind IN
                   ('execution', 'conflict', 'rollback', 'signal', 'anomaly', 'approval')),
        seq    INTEGER NOT NULL,          -- 1, 2, ... per (run, kind)
        body   TEXT NOT NULL,             -- JSON
        PRIMARY KEY (run_id, kind, seq)
    ) WITHOUT ROWID;
    CREATE TABLE system (
        id     INTEGER PRIMARY KEY CHECK (id = 1),
        state  TEXT NOT NULL CHECK (state IN ('unlocked', 'locked')),
        reason TEXT,
        "by"   TEXT,
        time   REAL
    );
    INSERT INTO system (id, state) VALUES (1, 'unlocked');
    """,
    # 2: records.kind is checked by the code (RECORD_KINDS), not by a CHECK, so
    #    a new kind ('event': the orchestrator's inputs, for exact recovery)
    #    needs no table rebuild after this one.
    """
    CREATE TABLE records_v2 (
        run_id TEXT NOT NULL REFERENCES runs (run_id),
        kind   TEXT NOT NULL,
        seq    INTEGER NOT NULL,          -- 1, 2, ... per (run, kind)
        body   TEXT NOT NULL,             -- JSON
        PRIMARY KEY (run_id, kind, seq)
    ) WITHOUT ROWID;
    INSERT INTO records_v2 (run_id, kind, seq, body) SELECT run_id, kind, seq, body FROM records;
    DROP TABLE records;
    ALTER TABLE records_v2 RENAME TO records;
    """,
]

_SQLITE_MAGIC = b"SQLite format 3\x00"
def _encode(obj: Any) -> str:
    """Compact JSON for storage, with orjson (several times faster than the stdlib
    encoder; every step of a run writes through here). Keys are not sorted and
    floats may be spelled differently from the stdlib (``0.00001`` for ``1e-05``):
    the stored text is never hashed; canonical text is produced on the way out
    (``transition_texts``). orjson would write NaN as null; none reaches the store
    (inputs refuse NaN, times and durations are finite)."""
    try:
        return orjson.dumps(obj).decode("utf-8")
    except TypeError:  # int beyond 64 bits and other values orjson refuses: the stdlib can
        return _stdlib_encode(obj)


_stdlib_encode = json.JSONEncoder(check_circular=False, ensure_ascii=False, separators=(",", ":"),
                                  allow_nan=False).encode
_T = TypeVar("_T")


def holder_label(call_id: str, run_id: str) -> str:
    """Who holds an intent, as shown to people and compared by the orchestrator."""
    return f"{call_id} (run {run_id})"


class StoreError(EnvironmentProblem):  # an InterlockError; the CLI maps it to exit 3
    """The store cannot be used as asked: foreign, newer, corrupt, read-only or
    locked file, a failed write, or a write that would break the chain. Exit 3."""


class _InjectedFailure(Exception):
    """Raised inside a write transaction by ``fail_on_write``; never escapes."""


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (``executescript`` would commit)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


def _error(path: Path, exc: sqlite3.Error, doing: str, timeout_s: float) -> StoreError:
    """Turn an SQLite error into a message that says what to do about it."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreError(f"{path} is locked by another process (waited {timeout_s:g} s to {doing}); "
                          "let it finish, or use another --state-dir")
    if primary in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM):
        return StoreError(f"{path} is read-only (cannot {doing}: {exc}); "
                          "make the state directory and the file writable")
    if primary == sqlite3.SQLITE_FULL:
        return StoreError(f"{path}: write failed: disk full (cannot {doing})")
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StoreError(f"{path} is corrupt or not an interlock store ({exc}); "
                          "move it away or use another --state-dir")
    if primary == sqlite3.SQLITE_CANTOPEN:
        return StoreError(f"cannot open {path} ({exc}); "
                          "check that the state directory exists and is writable")
    return StoreError(f"{path}: cannot {doing}: {exc}")


def _schema_version(conn: sqlite3.Connection, path: Path) -> int:
    """The store's schema version, 0 for an empty database; refuses foreign or newer files."""
    tables = sorted(r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"))
    if not tables:
        return 0
    foreign = StoreError(
        f"{path} is not an interlock store (an SQLite database with tables {', '.join(tables[:6])}"
        f"{', ...' if len(tables) > 6 else ''} but no interlock meta table); "
        "move it away or use another --state-dir")
    if "meta" not in tables:
        raise foreign
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        version = int(meta["schema_version"])
    except (sqlite3.OperationalError, KeyError, ValueError, TypeError):
        raise foreign from None
    if meta.get("application") != APPLICATION:
        raise foreign
    if version > len(MIGRATIONS):
        raise StoreError(f"{path} was written by a newer interlock (schema {version} > {len(MIGRATIONS)}); "
                         "upgrade interlock to use this state directory")
    return version


def _inspect(path: Path, timeout_s: float) -> None:
    """Look at an existing file without writing to it; raise if it is not ours to open."""
    if path.is_dir():
        raise StoreError(f"{path} is a directory, not an interlock store; remove it or use another --state-dir")
    try:
        with open(path, "rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from exc
    if not head:
        return  # an empty file is an empty database: a store whose creation was interrupted
    if head != _SQLITE_MAGIC:
        raise StoreError(f"{path} is not an interlock store (not an SQLite database); "
                         "move it away or use another --state-dir")
    # Without a -wal file everything is in the main file: read it as immutable,
    # which creates no -wal/-shm files beside a file that may not be ours. Only
    # if that read fails and a -wal file has appeared meanwhile (a writer came
    # in) is it read again the normal way.
    uri = path.resolve().as_uri()
    wal = Path(f"{path}-wal")
    immutable = not wal.exists()
    while True:
        conn = None
        try:
            conn = sqlite3.connect(f"{uri}?mode=ro{'&immutable=1' if immutable else ''}", uri=True,
                                   timeout=timeout_s)
            _schema_version(conn, path)
            return
        except sqlite3.Error as exc:
            if not (immutable and wal.exists()):
                raise _error(path, exc, "read it", timeout_s) from exc
            immutable = False
        finally:
            if conn is not None:
                conn.close()


def _prepare_dir(state_dir: Path) -> None:
    if state_dir.exists() and not state_dir.is_dir():
        raise StoreError(f"state directory {state_dir} exists and is not a directory")
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create state directory {state_dir}: {exc.strerror}") from exc


def _check_writable(state_dir: Path, path: Path) -> None:
    # SQLite needs to create the -wal and -shm files beside the database.
    if not os.access(state_dir, os.W_OK | os.X_OK):
        raise StoreError(f"state directory {state_dir} is read-only; make it writable or use another --state-dir")
    if path.exists() and not os.access(path, os.W_OK):
        raise StoreError(f"{path} is read-only; make it writable or use another --state-dir")


class SQLiteStore:
    """Transition log, intent ledger (the ``IntentLedger`` port), runs, records
    and lock state in one SQLite file. Open with :meth:`open`.

    Fault injection (the crash sweep): every write method (``create_run``,
    ``finish_run``, ``commit_step``, ``claim``, ``release``,
    ``set_system_state``) is one write transaction, numbered 1, 2, ... per
    store object. ``on_write(n)`` runs right after transaction n commits;
    with ``fail_on_write == n`` transaction n does all its work, then rolls
    back and raises ``StoreError("...write failed: disk full (injected)")``.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, *, timeout_s: float,
                 on_write: Callable[[int], None] | None, fail_on_write: int | None,
                 now: Callable[[], float]) -> None:
        self._conn: sqlite3.Connection | None = conn
        self.path = path
        self.timeout_s = timeout_s
        self.on_write = on_write
        self.fail_on_write = fail_on_write
        self._now = now
        self._writes = 0

    # -- opening ----------------------------------------------------------------

    @classmethod
    def open(cls, state_dir: str | Path, *, timeout_s: float = 5.0,
             on_write: Callable[[int], None] | None = None, fail_on_write: int | None = None,
             now: Callable[[], float] = time.time) -> SQLiteStore:
        """Open (creating and migrating as needed) the store in ``state_dir``.

        ``now`` stamps ``runs.created`` and ``intents.created`` (bookkeeping only;
        nothing in the outputs depends on it)."""
        state_dir = Path(state_dir)
        path = state_dir / DB_NAME
        _prepare_dir(state_dir)
        _inspect(path, timeout_s)
        _check_writable(state_dir, path)
        try:
            conn = sqlite3.connect(path, timeout=timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise _error(path, exc, "open it", timeout_s) from exc
        try:
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            cls._migrate(conn, path, timeout_s)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{path}: cannot switch to WAL journaling (got {mode!r}); "
                                 "put the state directory on a local file system")
        except sqlite3.Error as exc:
            conn.close()
            raise _error(path, exc, "open it", timeout_s) from exc
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, timeout_s=timeout_s, on_write=on_write,
                   fail_on_write=fail_on_write, now=now)

    @staticmethod
    def _migrate(conn: sqlite3.Connection, path: Path, timeout_s: float) -> None:
        """Bring the schema up to ``len(MIGRATIONS)`` in one transaction, under the
        write lock; the version is checked again there (another process may have
        migrated, or replaced the file, since we looked)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = _schema_version(conn, path)
            for number in range(version + 1, len(MIGRATIONS) + 1):
                for stmt in _statements(MIGRATIONS[number - 1]):
                    conn.execute(stmt)
                conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(number),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- plumbing ---------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: the store is closed")
        return self._conn

    @property
    def write_count(self) -> int:
        """Write transactions attempted so far by this object (committed or not)."""
        return self._writes

    @property
    def schema_version(self) -> int:
        return int(self._read("SELECT value FROM meta WHERE key = 'schema_version'")[0][0])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _error(self.path, exc, "read it", self.timeout_s) from exc

    def _write(self, doing: str, body: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``body`` in one BEGIN IMMEDIATE ... COMMIT; all or nothing."""
        conn = self.conn
        self._writes += 1
        number = self._writes
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _error(self.path, exc, doing, self.timeout_s) from exc
        try:
            result = body(conn)
            if self.fail_on_write == number:
                raise _InjectedFailure
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # keep the cause; a transaction left open makes the next write fail loudly
            if isinstance(exc, _InjectedFailure):
                raise StoreError(f"{self.path}: write failed: disk full (injected)") from None
            if isinstance(exc, sqlite3.Error):
                raise _error(self.path, exc, doing, self.timeout_s) from exc
            raise
        if self.on_write is not None:
            self.on_write(number)
        return result

    # -- runs -------------------------------------------------------------------

    def create_run(self, run_id: str, *, digests: dict[str, Any], meta: dict[str, Any]) -> None:
        def body(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    "INSERT INTO runs (run_id, created, status, digests, head_seq, head_hash, exit_code, meta)"
                    " VALUES (?, ?, 'running', ?, ?, ?, NULL, ?)",
                    (run_id, self._now(), _encode(digests), FIRST_SEQ - 1, GENESIS, _encode(meta)))
            except sqlite3.IntegrityError:
                raise StoreError(f"{self.path}: run {run_id!r} already exists") from None
        self._write(f"create run {run_id!r}", body)

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        rows = self._read(
            "SELECT run_id, created, status, digests, head_seq, head_hash, exit_code, meta"
            " FROM runs WHERE run_id = ?", (run_id,))
        return self._run_dict(rows[0]) if rows else None

    def list_runs(self) -> list[dict[str, Any]]:
        """Every run, oldest first."""
        rows = self._read(
            "SELECT run_id, created, status, digests, head_seq, head_hash, exit_code, meta"
            " FROM runs ORDER BY created, run_id")
        return [self._run_dict(r) for r in rows]

    @staticmethod
    def _run_dict(row: tuple[Any, ...]) -> dict[str, Any]:
        run_id, created, status, digests, head_seq, head_hash, exit_code, meta = row
        return {"run_id": run_id, "created": created, "status": status, "digests": json.loads(digests),
                "head_seq": head_seq, "head_hash": head_hash, "exit_code": exit_code,
                "meta": json.loads(meta)}

    def finish_run(self, run_id: str, *, status: str, exit_code: int) -> None:
        def body(conn: sqlite3.Connection) -> None:
            cur = conn.execute("UPDATE runs SET status = ?, exit_code = ? WHERE run_id = ?",
                               (status, exit_code, run_id))
            if cur.rowcount != 1:
                raise StoreError(f"{self.path}: unknown run {run_id!r}")
        self._write(f"finish run {run_id!r}", body)

    # -- the transition log and records: group commit -------------------------------

    def commit_step(self, run_id: str, *, transitions: Iterable[dict[str, Any]] = (),
                    records: Iterable[tuple[str, dict[str, Any]]] = ()) -> None:
        """Durably append everything of one orchestrator step in ONE transaction.

        ``transitions`` are output lines already chained by the caller
        (``interlock.core.audit.link_hash``); each must continue the stored head:
        ``seq == head_seq + 1`` and ``prev_hash == head_hash``. Otherwise nothing
        of the step is written and StoreError says where the chain broke: a
        resume (or a second process) cannot fork or rewrite a run's log.
        ``records`` are ``(kind, body)``; each kind is numbered 1, 2, ... per run."""
        lines = list(transitions)
        recs = list(records)
        for kind, _ in recs:
            if kind not in RECORD_KINDS:
                raise ValueError(f"record kind {kind!r} is not one of {', '.join(RECORD_KINDS)}")

        def body(conn: sqlite3.Connection) -> None:
            head = conn.execute("SELECT head_seq, head_hash FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if head is None:
                raise StoreError(f"{self.path}: unknown run {run_id!r}")
            head_seq, head_hash = head
            rows = []
            for line in lines:
                seq, prev, digest = line.get("seq"), line.get("prev_hash"), line.get("hash")
                if type(seq) is not int or seq != head_seq + 1 or prev != head_hash:
                    raise StoreError(
                        f"{self.path}: run {run_id!r}: transition does not continue the log: expected "
                        f"seq {head_seq + 1} with prev_hash {head_hash[:16]}..., got seq {seq!r} "
                        f"with prev_hash {str(prev)[:16]}...; nothing of this step was written")
                if not isinstance(digest, str) or not digest:
                    raise StoreError(f"{self.path}: run {run_id!r}: transition seq {seq} has no hash")
                rows.append((run_id, seq, _encode(line), digest))
                head_seq, head_hash = seq, digest
            if rows:
                conn.executemany("INSERT INTO transitions (run_id, seq, line, hash) VALUES (?, ?, ?, ?)", rows)
                conn.execute("UPDATE runs SET head_seq = ?, head_hash = ? WHERE run_id = ?",
                             (head_seq, head_hash, run_id))
            if recs:
                last: dict[str, int] = {}
                rec_rows = []
                for kind, rec in recs:
                    if kind not in last:
                        last[kind] = conn.execute(
                            "SELECT COALESCE(MAX(seq), 0) FROM records WHERE run_id = ? AND kind = ?",
                            (run_id, kind)).fetchone()[0]
                    last[kind] += 1
                    rec_rows.append((run_id, kind, last[kind], _encode(rec)))
                conn.executemany("INSERT INTO records (run_id, kind, seq, body) VALUES (?, ?, ?, ?)", rec_rows)
        self._write(f"commit a step of run {run_id!r}", body)

    def transitions(self, run_id: str, *, after: int = FIRST_SEQ - 1) -> list[dict[str, Any]]:
        """The run's transition lines in seq order (those with seq > ``after``)."""
        rows = self._read("SELECT line FROM transitions WHERE run_id = ? AND seq > ? ORDER BY seq",
                          (run_id, after))
        return [json.loads(r[0]) for r in rows]

    def transition_texts(self, run_id: str) -> list[str]:
        """The run's transition lines as canonical JSON text: the exact lines of
        ``execution_state_transitions.jsonl`` (for a byte-exact export or check)."""
        return [canonical_json(json.loads(r[0]))
                for r in self._read("SELECT line FROM transitions WHERE run_id = ? ORDER BY seq", (run_id,))]

    def head(self, run_id: str) -> tuple[int, str]:
        """``(count, head_hash)`` of the run's log, kept apart from the log (the
        ``head`` argument of ``interlock.core.audit.verify_chain``)."""
        rows = self._read("SELECT head_seq, head_hash FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            raise StoreError(f"{self.path}: unknown run {run_id!r}")
        return (rows[0][0] - FIRST_SEQ + 1, rows[0][1])

    def records(self, run_id: str, kind: str) -> list[dict[str, Any]]:
        """The run's records of one kind, in the order they were committed."""
        rows = self._read("SELECT body FROM records WHERE run_id = ? AND kind = ? ORDER BY seq",
                          (run_id, kind))
        return [json.loads(r[0]) for r in rows]

    # -- the irreversible-intent ledger (IntentLedger port, I4) ----------------------

    def claim(self, tool: str, key: str, call_id: str, run_id: str) -> str | None:
        """Claim (tool, key) for ``call_id``, durably, before its LIVE start.

        Returns None when the claim is this call's (new, or a retry/resume of the
        same call *of the same run*), else who holds it: ``"<call> (run <run>)"``.
        Call ids repeat across runs (``plan/step``), so the holder is the pair
        (run, call): a later run's call with the same id is a duplicate (I4).
        Atomic across processes: the UNIQUE (tool, key) constraint decides under
        SQLite's write lock."""
        def body(conn: sqlite3.Connection) -> str | None:
            cur = conn.execute(
                "INSERT INTO intents (tool, key, call_id, run_id, created) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (tool, key) DO NOTHING", (tool, key, call_id, run_id, self._now()))
            if cur.rowcount == 1:
                return None
            holder, holder_run = conn.execute(
                "SELECT call_id, run_id FROM intents WHERE tool = ? AND key = ?", (tool, key)).fetchone()
            if holder == call_id and holder_run == run_id:
                return None
            return holder_label(holder, holder_run)
        return self._write(f"claim {tool}/{key}", body)

    def release(self, tool: str, key: str, call_id: str, run_id: str | None = None) -> None:
        """Give back a claim that did not go LIVE. Only the holder can release;
        a release by any other call changes nothing (it must not free the key)."""
        def body(conn: sqlite3.Connection) -> None:
            if run_id is None:
                conn.execute("DELETE FROM intents WHERE tool = ? AND key = ? AND call_id = ?",
                             (tool, key, call_id))
            else:
                conn.execute("DELETE FROM intents WHERE tool = ? AND key = ? AND call_id = ? AND run_id = ?",
                             (tool, key, call_id, run_id))
        self._write(f"release {tool}/{key}", body)

    def started_keys(self) -> dict[tuple[str, str], str]:
        """Every claimed key -> its holder, ``"<call> (run <run>)"``."""
        return {(t, k): holder_label(c, r) for t, k, c, r in self._read("SELECT tool, key, call_id, run_id FROM intents")}

    def intent(self, tool: str, key: str) -> dict[str, Any] | None:
        rows = self._read("SELECT tool, key, call_id, run_id, created FROM intents WHERE tool = ? AND key = ?",
                          (tool, key))
        if not rows:
            return None
        t, k, c, r, created = rows[0]
        return {"tool": t, "key": k, "call_id": c, "run_id": r, "created": created}

    # -- the system lock (outlives runs) ----------------------------------------------

    def system_state(self) -> dict[str, Any]:
        state, reason, by, at = self._read('SELECT state, reason, "by", time FROM system WHERE id = 1')[0]
        return {"state": state, "reason": reason, "by": by, "time": at}

    def set_system_state(self, state: str, reason: str, by: str, time: float) -> None:
        if state not in SYSTEM_STATES:
            raise ValueError(f"system state {state!r} is not one of {', '.join(SYSTEM_STATES)}")

        def body(conn: sqlite3.Connection) -> None:
            conn.execute('UPDATE system SET state = ?, reason = ?, "by" = ?, time = ? WHERE id = 1',
                         (state, reason, by, time))
        self._write(f"set the system state to {state}", body)
