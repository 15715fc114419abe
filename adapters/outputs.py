"""Writing a run directory: the seven output files of SPEC section 8.

JSON documents are replaced atomically (temp file in the same directory,
fsync, ``os.replace``): a reader, or a crash, sees the old file or the new
one, never half of one. JSONL files are append-only, one canonical JSON line
per record, flushed as written. The summary is written last: its presence
(with the audit head) marks a complete run.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import attrs
import orjson

from interlock.adapters.cli import EnvironmentProblem
from interlock.core.audit import canonical_json, chain_head, chain_lines, transition_line
from interlock.core.convert import unstructure
from interlock.core.output_schemas import OUTPUT_FILES, output_schemas, render_output_schemas
from interlock.core.records import ConflictRecord, ExecutionRecord, RollbackEvent, TransitionRecord

SCHEMA_VERSION = 1


@attrs.frozen
class OutputPaths:
    """The seven file names of a run directory."""

    summary: str = "orchestration_summary.json"
    executions: str = "tool_execution_log.jsonl"
    transitions: str = "execution_state_transitions.jsonl"
    conflicts: str = "tool_conflicts.json"
    rollbacks: str = "rollback_events.jsonl"
    signals: str = "learning_signals.jsonl"
    health: str = "system_health.json"

    def names(self) -> tuple[str, ...]:
        return tuple(attrs.astuple(self))


OUTPUTS = OutputPaths()


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable. Not every platform can open a directory: best effort there."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Replace ``path`` with ``obj`` as indented JSON, atomically.

    The text is built before any file is touched (a value JSON cannot hold
    raises first); the temp file is removed when anything fails.
    """
    # The stdlib's indent forces its pure-Python encoder (seconds for a 100k-call
    # summary). Its C encoder checks the value (NaN and the like raise, as before);
    # orjson writes the same sorted, indented layout.
    _STRICT_CHECK(obj)
    write_text_atomic(path, orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
                      .decode("utf-8") + "\n")


_STRICT_CHECK = json.JSONEncoder(allow_nan=False, check_circular=True, ensure_ascii=False,
                                 separators=(",", ":")).encode


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` with ``text`` atomically (the mechanism of ``write_json_atomic``)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            try:  # mkstemp makes 0600; keep the mode of the file replaced, else the usual 0644
                mode = path.stat().st_mode & 0o7777
            except FileNotFoundError:
                mode = 0o644
            os.fchmod(fh.fileno(), mode)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


class JsonlWriter:
    """Append-only JSONL: one canonical JSON line per record, flushed as written.

    Opens in append mode, so a resumed run continues the same file; ``close``
    fsyncs. Usable as a context manager.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fh = open(self.path, "a", encoding="utf-8", newline="\n")  # noqa: SIM115 - closed in close()
        self.lines = 0

    def append(self, record: dict[str, Any]) -> None:
        self._fh.write(canonical_json(record) + "\n")
        self._fh.flush()
        self.lines += 1

    def extend(self, records: Iterable[dict[str, Any]]) -> None:
        """Append many records with one flush at the end (an export, not a live stream)."""
        for record in records:
            self._fh.write(canonical_json(record) + "\n")
            self.lines += 1
        self._fh.flush()

    def close(self) -> None:
        if self._fh.closed:
            return
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def prepare_out_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Create the run directory, or fail with an EnvironmentProblem (exit 3) saying why.

    Refuses a path that is a file, a directory it cannot write, and a directory
    that already holds a run (its audit log is append-only, never overwritten).
    Call it before running so nothing runs when the output cannot be kept.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise EnvironmentProblem(f"--out {out}: exists and is not a directory; give a directory path")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentProblem(f"--out {out}: cannot create the directory: {exc.strerror or exc}") from exc
    existing = [name for name in OUTPUTS.names() if (out / name).exists()]
    if existing:
        raise EnvironmentProblem(
            f"--out {out}: already holds a run ({', '.join(existing)}); "
            "choose a new directory (the audit log is never overwritten)"
        )
    try:
        fd, probe = tempfile.mkstemp(dir=out, prefix=".interlock-probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise EnvironmentProblem(f"--out {out}: the directory is not writable: {exc.strerror or exc}") from exc
    return out


def _append_all(path: Path, records: Iterable[dict[str, Any]]) -> None:
    with JsonlWriter(path) as w:
        w.extend(records)


def write_outputs(
    out_dir: str | os.PathLike[str],
    *,
    run_id: str,
    summary: dict[str, Any],
    health: dict[str, Any],
    transitions: list[TransitionRecord],
    executions: list[ExecutionRecord],
    conflicts: list[ConflictRecord],
    rollbacks: list[RollbackEvent],
    signals: list[dict[str, Any]],
    chained: list[dict[str, Any]] | None = None,
) -> dict[str, Path]:
    """Write the seven outputs of one run into ``out_dir`` (see ``prepare_out_dir``).

    Chains the transitions and stores the head in ``summary["audit"]`` (the
    caller's dict is updated, so the head can also go to the store); a head
    already there must be the same. Returns output file name -> path.
    """
    for name, doc in (("summary", summary), ("health", health)):
        if doc.get("run_id", run_id) != run_id:
            raise ValueError(f"{name} run_id {doc['run_id']!r} is not the run being written ({run_id!r})")
    head = {"schema_version": SCHEMA_VERSION, "run_id": run_id}
    if chained is None or len(chained) != len(transitions):
        chained = chain_lines([transition_line(t, run_id) for t in transitions])
    count, head_hash = chain_head(chained)
    stated = summary.get("audit")
    if stated is not None and stated != {"transitions": count, "head_hash": head_hash}:
        # the runner chained the same records as it went (store): two chains disagreeing is a bug
        raise ValueError(
            f"summary /audit {stated} is not the head of the transitions being written "
            f"({count} records, head {head_hash})"
        )
    out = prepare_out_dir(out_dir)
    paths = {name: out / name for name in OUTPUTS.names()}
    try:
        _append_all(paths[OUTPUTS.transitions], chained)
        _append_all(paths[OUTPUTS.executions], ({**head, **unstructure(e)} for e in executions))
        _append_all(paths[OUTPUTS.rollbacks], ({**head, **unstructure(r)} for r in rollbacks))
        _append_all(paths[OUTPUTS.signals], ({**head, **s} for s in signals))
        write_json_atomic(paths[OUTPUTS.conflicts], {**head, "conflicts": [unstructure(c) for c in conflicts]})
        write_json_atomic(paths[OUTPUTS.health], {**health, **head})
        summary.update(head)
        summary["audit"] = {"transitions": count, "head_hash": head_hash}
        write_json_atomic(paths[OUTPUTS.summary], summary)
    except OSError as exc:
        raise EnvironmentProblem(f"--out {out}: writing the outputs failed: {exc}") from exc
    return paths


# --------------------------------------------------------------------------
# Schemas: the committed files and validating a run directory against them
# --------------------------------------------------------------------------


def write_output_schemas(dest: str | os.PathLike[str]) -> list[Path]:
    """Write ``specs/schemas/<name>.schema.json`` for the seven outputs; returns the paths."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_output_schemas().items():
        path = dest / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            write_text_atomic(path, text)
        written.append(path)
    return written


def validate_run_dir(run_dir: str | os.PathLike[str]) -> list[str]:
    """Every schema violation in a run directory, as ``file:line: /pointer: message``.

    Missing files are violations too. Used by tests and by whoever wants to
    check a run's outputs against ``specs/schemas``.
    """
    from jsonschema import Draft202012Validator

    run = Path(run_dir)
    problems: list[str] = []
    for name, schema in output_schemas().items():
        validator = Draft202012Validator(schema)
        path = run / name
        if not path.is_file():
            problems.append(f"{name}: missing")
            continue
        if name.endswith(".jsonl"):
            docs = []
            # split on "\n" only: str.splitlines would also break at U+2028 inside a string
            lines = path.read_text(encoding="utf-8").split("\n")
            if lines[-1] == "":
                lines.pop()  # the newline ending the last line
            for i, line in enumerate(lines, start=1):
                try:
                    docs.append((f"{name}:{i}", json.loads(line)))
                except ValueError as exc:
                    problems.append(f"{name}:{i}: not valid JSON ({exc})")
        else:
            try:
                docs = [(name, json.loads(path.read_text(encoding="utf-8")))]
            except ValueError as exc:
                problems.append(f"{name}: not valid JSON ({exc})")
                continue
        for where, doc in docs:
            for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
                pointer = "/" + "/".join(str(p) for p in err.absolute_path)
                problems.append(f"{where}: {pointer}: {err.message}")
    return problems


__all__ = [
    "OUTPUT_FILES", "OUTPUTS", "JsonlWriter", "OutputPaths", "prepare_out_dir",
    "validate_run_dir", "write_json_atomic", "write_output_schemas", "write_outputs",
    "write_text_atomic",
]
