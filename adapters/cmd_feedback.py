"""``interlock feedback``: ingest Phase-22 validations into a run's learning signals.

Reads the run's summary (its calls and their final states) and execution log,
correlates each validation with the calls it names
(``interlock.core.feedback.correlate``) and appends an APPROVAL_MISMATCH
``validation_contradicts`` signal per contradiction to learning_signals.jsonl
(append-only; a contradiction already recorded is not appended twice).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from interlock.adapters.clocks import SystemClock
from interlock.adapters.cmd_tune import check_fields, read_jsonl
from interlock.adapters.outputs import OUTPUTS, JsonlWriter
from interlock.core.errors import LoadError, Problem
from interlock.core.feedback import correlate, validation_problems

HELP = """\
Correlate Phase-22 validations with a run's outcomes. Each line of the
validations file is a JSON object naming a call or a plan's validation:
  {"call_id": "release-42/deploy", "valid": true}
  {"phase22_validation_id": "v22-17", "valid": false, "detail": "schema drift"}
A validation that says valid for a call that failed (or invalid for one that
succeeded) becomes an APPROVAL_MISMATCH signal appended to the run's
learning_signals.jsonl.

Example:
  interlock feedback runs/r1 --validations phase22.jsonl
  appended 2 APPROVAL_MISMATCH signal(s) to runs/r1/learning_signals.jsonl
  (3 validations; 1 named no call of this run)
"""

#: The summary call fields correlation reads.
_CALL_FIELDS: dict[str, tuple[Any, str]] = {
    "call_id": (lambda v: isinstance(v, str), "a string"),
    "tool": (lambda v: isinstance(v, str), "a string"),
    "final_state": (lambda v: isinstance(v, str), "a string"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "feedback", help="ingest Phase-22 validations into a run's learning signals",
        description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by interlock run")
    p.add_argument("--validations", required=True, metavar="FILE.jsonl",
                   help="Phase-22 validations, one JSON object per line")
    p.set_defaults(func=run)


def _read_summary(run_dir: Path, problems: list[Problem]) -> dict[str, Any] | None:
    path = run_dir / OUTPUTS.summary
    name = str(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(Problem(name, "", "file not found; expected a run directory written by interlock run"))
        return None
    except (ValueError, UnicodeDecodeError) as exc:
        problems.append(Problem(name, "", f"not valid JSON ({exc}); expected the run summary"))
        return None
    if not isinstance(doc, dict):
        problems.append(Problem(name, "", "expected a JSON object"))
        return None
    before = len(problems)
    if not isinstance(doc.get("run_id"), str):
        problems.append(Problem(name, "/run_id", "missing or not a string; expected the run id"))
    if not isinstance(doc.get("calls"), list):
        problems.append(Problem(name, "/calls", "missing or not a list; expected the calls of the run"))
    else:
        for i, c in enumerate(doc["calls"]):
            if not isinstance(c, dict):
                problems.append(Problem(name, f"/calls/{i}", "expected an object"))
                continue
            for p in _field_problems(c, name, f"/calls/{i}"):
                problems.append(p)
    return doc if len(problems) == before else None


def _field_problems(doc: dict[str, Any], name: str, at: str) -> list[Problem]:
    found: list[Problem] = []
    check_fields(doc, name, _CALL_FIELDS, found)
    return [Problem(p.file, at + p.pointer, p.message) for p in found]


def _position(p: Problem) -> tuple[str, int, str]:
    """Problems in file order, then line order (``file:LINE``), then pointer."""
    name, _, line = p.file.rpartition(":")
    return (name, int(line), p.pointer) if line.isdigit() else (p.file, 0, p.pointer)


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    problems: list[Problem] = []
    if not run_dir.is_dir():
        raise LoadError([Problem(str(run_dir), "", "not a directory; expected a run directory written by interlock run")])
    summary = _read_summary(run_dir, problems)
    executions = [doc for _, doc in read_jsonl(run_dir / OUTPUTS.executions, problems)]
    vpath = Path(args.validations)
    numbered = read_jsonl(vpath, problems)
    vlines = [doc for _, doc in numbered]
    problems += validation_problems(vlines, str(vpath), linenos=[n for n, _ in numbered])
    if problems or summary is None:
        raise LoadError(sorted(problems, key=_position))

    # A call's Phase-22 id: from its plan in the summary, else from its executions.
    v22 = {p["plan_id"]: p.get("phase22_validation_id") for p in summary.get("plans", [])
           if isinstance(p, dict) and "plan_id" in p}
    v22_exec = {e.get("call_id"): e.get("phase22_validation_id") for e in executions}
    calls = [{**c, "phase22_validation_id": c.get("phase22_validation_id")
              or v22.get(c.get("plan_id")) or v22_exec.get(c["call_id"])}
             for c in summary["calls"]]
    signals = correlate(vlines, calls, time=SystemClock().now())

    path = run_dir / OUTPUTS.signals
    seen = {(s.get("call_id"), s.get("kind"), s.get("detail"))
            for _, s in read_jsonl(path, []) if s.get("signal") == "APPROVAL_MISMATCH"}
    fresh = [s for s in signals if (s["call_id"], s["kind"], s["detail"]) not in seen]
    with JsonlWriter(path) as w:
        for s in fresh:
            w.append({"schema_version": 1, "run_id": summary["run_id"], **s})

    known_ids = {c["call_id"] for c in calls}
    known_v22 = {c["phase22_validation_id"] for c in calls if c["phase22_validation_id"]}
    unmatched = sum(1 for v in vlines
                    if (v["call_id"] not in known_ids if "call_id" in v
                        else v["phase22_validation_id"] not in known_v22))
    print(f"appended {len(fresh)} APPROVAL_MISMATCH signal(s) to {path}")
    notes = [f"{len(vlines)} validation(s)"]
    if unmatched:
        notes.append(f"{unmatched} named no call of this run")
    if len(fresh) < len(signals):
        notes.append(f"{len(signals) - len(fresh)} already recorded")
    print(f"({'; '.join(notes)})")
    return 0
