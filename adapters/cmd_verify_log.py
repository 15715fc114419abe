"""``interlock verify-log``: is a run's transition log intact (I10)?

Checks the hash chain record by record and, with the head stored outside the
log (``orchestration_summary.json`` ``/audit``), that nothing was cut off the
end. Exit 0 intact, 1 tampered, 2 a path or summary that cannot be used.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from interlock.adapters.cli import EXIT_OK, EXIT_PROBLEMS, UsageProblem
from interlock.adapters.outputs import OUTPUTS
from interlock.core.audit import verify_log_bytes

DESCRIPTION = """\
Check that a run's transition log is intact: every record unedited, in order,
none deleted, and (with the head stored in orchestration_summary.json) none
cut off the end. Exit 0 intact, 1 tampered, 2 a path or summary that cannot
be used."""

EXAMPLE = """\
examples:
  interlock verify-log runs/r1
  interlock verify-log --state-dir .interlock --run run-20261125T101500Z-3fa2c1   # the store itself
  interlock verify-log --state-dir .interlock --run system                        # operator lock log
  interlock verify-log runs/r1/execution_state_transitions.jsonl --head-from runs/r1/orchestration_summary.json

prints "ok: N records, head <hash>" (exit 0) or
"tampered: record at line L (seq S): <problem>" (exit 1)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "verify-log",
        help="detect edited, reordered, deleted or truncated transition records",
        description=DESCRIPTION,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", metavar="RUN_DIR|LOG", nargs="?",
                   help="a run directory, or an execution_state_transitions.jsonl")
    p.add_argument("--state-dir", default=None, help="verify the log kept in this durable store instead")
    p.add_argument("--run", default=None, metavar="RUN", help="with --state-dir: the run id (or 'system')")
    p.add_argument("--head-from", metavar="SUMMARY", default=None,
                   help="orchestration_summary.json holding the head (default: the one in RUN_DIR)")
    p.set_defaults(func=run)


def read_head(summary_path: Path) -> tuple[int, str]:
    """``(count, head_hash)`` from a summary's ``/audit``, or a UsageProblem naming the field."""
    try:
        doc = json.loads(summary_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageProblem(f"{summary_path}: no such file") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageProblem(f"{summary_path}: not valid JSON ({exc})") from None
    audit = doc.get("audit") if isinstance(doc, dict) else None
    if not isinstance(audit, dict):
        raise UsageProblem(f"{summary_path}: /audit: expected an object with transitions and head_hash")
    count, head_hash = audit.get("transitions"), audit.get("head_hash")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise UsageProblem(f"{summary_path}: /audit/transitions: expected a count, got {count!r}")
    if not isinstance(head_hash, str) or len(head_hash) != 64:
        raise UsageProblem(f"{summary_path}: /audit/head_hash: expected a 64-hex-digit hash, got {head_hash!r}")
    return count, head_hash


def _report(check, head) -> int:
    if not check.ok:
        seq = "?" if check.seq is None else check.seq
        print(f"tampered: record at line {check.first_bad + 1} (seq {seq}): {check.problem}")
        return EXIT_PROBLEMS
    print(f"ok: {check.records} records, head {check.head_hash}")
    if head is None:
        print("note: no stored head to compare with (--head-from SUMMARY); "
              "a log cut at a record boundary would go unnoticed", file=sys.stderr)
    return EXIT_OK


def _verify_store(state_dir: str, run_id: str) -> int:
    """The store's copy: its records in order, against the head kept in the runs row."""
    from interlock.adapters.store import SQLiteStore
    from interlock.core.audit import verify_chain

    with SQLiteStore.open(state_dir) as store:
        if store.get_run(run_id) is None:
            raise UsageProblem(f"{store.path}: no run {run_id!r}")
        head = store.head(run_id)
        texts = store.transition_texts(run_id)
    return _report(verify_chain(texts, head), head)


def run(args: argparse.Namespace) -> int:
    if args.state_dir is not None or args.run is not None:
        if not (args.state_dir and args.run):
            raise UsageProblem("--state-dir and --run go together (the store, and which run's log)")
        return _verify_store(args.state_dir, args.run)
    if args.path is None:
        raise UsageProblem("give a run directory or log file, or --state-dir DIR --run RUN")
    path = Path(args.path)
    summary = Path(args.head_from) if args.head_from else None
    if path.is_dir():
        log = path / OUTPUTS.transitions
        if summary is None and (path / OUTPUTS.summary).is_file():
            summary = path / OUTPUTS.summary
    else:
        log = path
    if not log.is_file():
        raise UsageProblem(f"{log}: no such file (expected a run directory or {OUTPUTS.transitions})")
    head = read_head(summary) if summary is not None else None
    return _report(verify_log_bytes(log.read_bytes(), head), head)
