"""``interlock replay``: rebuild a run's final states from its log and compare (I10).

Replays execution_state_transitions.jsonl against the controller definition
and compares the result with orchestration_summary.json. ``differences``
returns one section per check; a new check (metrics recomputed from
tool_execution_log.jsonl with ``interlock.core.monitor``, compared by
``interlock.core.replay.compare_metrics``) is one more section there.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from interlock.adapters.cli import EXIT_OK, EXIT_PROBLEMS, UsageProblem
from interlock.adapters.outputs import OUTPUTS
from interlock.core.errors import InterlockError
from interlock.core.replay import ReplayResult, compare_with_summary, parse_jsonl, replay_states

DESCRIPTION = """\
Rebuild every call's final state (and the lock state) from a run's transition
log, using the controller definition, and compare it with the run's summary.
Exit 0 when everything matches, 1 on any difference or invalid transition,
2 when the directory lacks the run files."""

EXAMPLE = """\
example:
  interlock replay runs/r1

prints the replayed counts per state, then "final states: match" or the differences."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "replay",
        help="rebuild every call's final state from a run's logs; compare with the summary",
        description=DESCRIPTION,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by interlock run")
    p.set_defaults(func=run)


def load_run(run_dir: Path) -> tuple[list[dict[str, Any]], list[str], dict[str, Any]]:
    """Transition records, their parse problems, and the summary; UsageProblem when files are missing."""
    missing = [n for n in (OUTPUTS.transitions, OUTPUTS.summary) if not (run_dir / n).is_file()]
    if missing:
        raise UsageProblem(f"{run_dir}: not a complete run directory: missing {', '.join(missing)}")
    summary_path = run_dir / OUTPUTS.summary
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageProblem(f"{summary_path}: not valid JSON ({exc})") from None
    if not isinstance(summary, dict):
        raise UsageProblem(f"{summary_path}: (document): expected a JSON object")
    text = (run_dir / OUTPUTS.transitions).read_text(encoding="utf-8", errors="replace")
    records, problems = parse_jsonl(text.split("\n"))
    return records, [f"{OUTPUTS.transitions}: {p}" for p in problems], summary


def differences(result: ReplayResult, summary: dict[str, Any], records: list[dict[str, Any]],
                run_dir: Path) -> dict[str, list[str]]:
    """Check name -> its differences (an empty list: that check matches).

    The metrics are recomputed from the logs alone (I10): executions and rollbacks
    from their JSONL files, LIVE approval answers from the transitions (in the order
    the monitor saw them), conflicted calls from tool_conflicts.json, the window and
    weights from the effective policy kept in the summary."""
    from interlock.core.convert import structure
    from interlock.core.model import Policy
    from interlock.core.monitor import replay_metrics
    from interlock.core.replay import compare_metrics

    out = {"final states": compare_with_summary(result, summary)}
    try:
        policy = structure(summary.get("policy") or {"schema_version": 1}, Policy, "summary policy")
        executions = _jsonl(run_dir / "tool_execution_log.jsonl")
        rollbacks = _jsonl(run_dir / "rollback_events.jsonl")
        conflicts = json.loads((run_dir / "tool_conflicts.json").read_text(encoding="utf-8"))["conflicts"]
    except (OSError, ValueError, KeyError, InterlockError) as exc:
        out["metrics"] = [f"cannot recompute: {exc}"]
        return out
    approvals = [t["trigger"] == "approve" for t in records
                 if t.get("from") == "awaiting_approval" and t.get("trigger") in ("approve", "deny")]
    conflicted = {c for rec in conflicts for c in rec.get("calls", [])}
    try:
        recomputed = replay_metrics(executions, rollbacks, approvals, conflicted, policy)
    except (KeyError, TypeError, ValueError) as exc:
        out["metrics"] = [f"cannot recompute: a log line lacks a field ({exc})"]
        return out
    out["metrics"] = compare_metrics(recomputed, summary.get("metrics") or {})
    return out


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UsageProblem(f"{run_dir}: no such run directory")
    records, parse_problems, summary = load_run(run_dir)
    result = replay_states(records)
    counts = result.counts_by_state()
    print(f"replayed {len(records)} transitions of {len(result.final_states)} calls "
          f"(lock: {result.lock_state})")
    width = max((len(s) for s in counts), default=0)
    for state, n in counts.items():
        print(f"  {state:<{width}}  {n}")
    failed = False
    log_problems = parse_problems + result.problems
    if log_problems:
        failed = True
        print(f"log: {len(log_problems)} invalid record(s):")
        for p in log_problems:
            print(f"  {p}")
    for check, diffs in differences(result, summary, records, run_dir).items():
        if diffs:
            failed = True
            print(f"{check}: {len(diffs)} difference(s):")
            for d in diffs:
                print(f"  {d}")
        else:
            print(f"{check}: match")
    return EXIT_PROBLEMS if failed else EXIT_OK
