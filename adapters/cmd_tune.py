"""``interlock tune``: calibration and live-threshold recommendations from past runs.

Reads tool_execution_log.jsonl of each run directory, feeds the real outcomes
(dry_run and live) to ``interlock.core.learning``, prints calibration and the
recommended threshold per risk (and per tool with enough data) with its
sample size and Wilson interval, and the unified diff of the policy it would
write. ``--write`` writes that policy to a new file for review: the policy a
run uses changes only when you point a run at it (or, in a run, through
``learning.auto_tune``; I14).
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import math
from pathlib import Path
from typing import Any

import attrs
import yaml

from interlock.adapters.cli import UsageProblem
from interlock.adapters.loading import read_document
from interlock.adapters.outputs import OUTPUTS, write_text_atomic
from interlock.core.convert import structure_policy
from interlock.core.errors import LoadError, Problem
from interlock.core.learning import apply_recommendations, recommend, samples_from_executions
from interlock.core.model import Policy, Risk

HELP = """\
Recommend live thresholds from the real outcomes (dry_run and live) of past
runs: per risk the lowest confidence whose Wilson lower bound of success
reaches learning.target_success, never below learning.floor; without enough
evidence the current threshold is kept. Prints calibration (Brier score,
expected calibration error) per risk, the recommendations with their sample
size and 95% Wilson interval, and a unified diff of the policy it would write.

Example:
  interlock tune runs/r1 runs/r2 --policy policy.yaml --write policy.tuned.yaml
  risk    samples  brier   ece    current  recommended  n    successes  wilson 95%      status
  medium  240      0.041   0.032  0.75     0.62         212  211        [0.974, 0.999]  qualified
  ...
  --- policy.yaml
  +++ policy.tuned.yaml
  @@ ...
"""

_MODES = ("mock", "dry_run", "live")
_RISKS = tuple(r.value for r in Risk)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tune", help="threshold recommendations from past runs",
        description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories written by interlock run")
    p.add_argument("--policy", metavar="FILE",
                   help="the policy to tune (YAML or JSON); default: the safe built-in policy")
    p.add_argument("--write", metavar="NEW_POLICY.yaml",
                   help="write the tuned policy to this file (refuses to overwrite --policy)")
    p.add_argument("--min-tool-samples", type=int, default=20, metavar="N",
                   help="recommend per tool only with at least N samples (default 20)")
    p.set_defaults(func=run)


# --------------------------------------------------------------------------
# Reading run directories
# --------------------------------------------------------------------------


def read_jsonl(path: Path, problems: list[Problem]) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-blank line; a problem per unreadable line or file."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(Problem(name, "", "file not found; expected a file written by interlock run"))
        return []
    except UnicodeDecodeError as exc:
        problems.append(Problem(name, "", f"not valid UTF-8 at byte {exc.start}; expected UTF-8 JSON lines"))
        return []
    except OSError as exc:
        problems.append(Problem(name, "", f"cannot read the file: {exc.strerror or exc}"))
        return []
    out = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError as exc:
            problems.append(Problem(f"{name}:{lineno}", "", f"not valid JSON ({exc.msg}); expected one JSON object per line"))
            continue
        if not isinstance(doc, dict):
            problems.append(Problem(f"{name}:{lineno}", "", f"a JSON {type(doc).__name__}; expected an object"))
            continue
        out.append((lineno, doc))
    return out


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


#: The execution-log fields learning reads, with what each must be.
_EXEC_FIELDS: dict[str, tuple[Any, str]] = {
    "call_id": (lambda v: isinstance(v, str), "a string"),
    "tool": (lambda v: isinstance(v, str), "a string"),
    "mode": (lambda v: v in _MODES, "one of mock, dry_run, live"),
    "risk": (lambda v: v in _RISKS, "one of low, medium, high"),
    "outcome": (lambda v: isinstance(v, str), "a string (succeeded, failed or lost)"),
    "confidence": (lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
}


def check_fields(doc: dict[str, Any], where: str, fields: dict[str, tuple[Any, str]],
                 problems: list[Problem]) -> bool:
    ok = True
    for key, (good, expected) in fields.items():
        if key not in doc:
            problems.append(Problem(where, f"/{key}", f"missing; expected {expected}"))
            ok = False
        elif not good(doc[key]):
            problems.append(Problem(where, f"/{key}", f"{json.dumps(doc[key])[:60]}; expected {expected}"))
            ok = False
    return ok


def read_execution_log(run_dir: Path, problems: list[Problem]) -> list[dict[str, Any]]:
    """The execution lines of a run directory whose learning fields are sound."""
    if not run_dir.is_dir():
        problems.append(Problem(str(run_dir), "", "not a directory; expected a run directory written by interlock run"))
        return []
    path = run_dir / OUTPUTS.executions
    out = []
    for lineno, doc in read_jsonl(path, problems):
        if check_fields(doc, f"{path}:{lineno}", _EXEC_FIELDS, problems):
            out.append(doc)
    return out


# --------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    if args.policy is not None:
        doc = read_document(args.policy)
        policy = structure_policy(doc, str(args.policy))
    else:
        doc, policy = {"schema_version": 1}, Policy()
    problems: list[Problem] = []
    lines: list[dict[str, Any]] = []
    for d in args.run_dirs:
        lines += read_execution_log(Path(d), problems)
    if problems:
        raise LoadError(problems)
    samples = samples_from_executions(lines)
    recs = recommend(samples, policy, min_tool_samples=args.min_tool_samples)
    print(f"{len(lines)} executions in {len(args.run_dirs)} run(s); {len(samples)} real outcomes "
          f"(dry_run and live) as samples; target success {recs['target_success']:g}")
    _print_table("risk", recs["risks"])
    if recs["tools"]:
        print()
        _print_table("tool", recs["tools"])

    # The proposal: recommendations applied as auto_tune would (floor, dry_run, risk order).
    forced = attrs.evolve(policy, learning=attrs.evolve(policy.learning, auto_tune=True))
    _, changes = apply_recommendations(forced, recs)
    new_doc = copy.deepcopy(doc)
    for ch in changes:
        new_doc.setdefault("thresholds", {}).setdefault(ch["risk"], {})["live"] = ch["to"]
    print()
    if changes:
        print("changes:")
        for ch in changes:
            print(f"  {ch['risk']}: live {ch['from']:g} -> {ch['to']:g} ({ch['reason']})")
    else:
        print("no threshold change recommended")
    old_text = yaml.safe_dump(doc, sort_keys=False)
    new_text = yaml.safe_dump(new_doc, sort_keys=False)
    diff = difflib.unified_diff(old_text.splitlines(keepends=True), new_text.splitlines(keepends=True),
                                fromfile=str(args.policy or "(built-in policy)"),
                                tofile=str(args.write or "(tuned policy)"))
    text = "".join(diff)
    if text:
        print()
        print(text, end="" if text.endswith("\n") else "\n")
    if not policy.learning.auto_tune:
        print("note: learning.auto_tune is off, so no run changes its thresholds by itself; "
              "review the diff and use the written policy deliberately")
    if args.write:
        target = Path(args.write)
        if args.policy is not None and target.resolve() == Path(args.policy).resolve():
            raise UsageProblem(f"--write {target}: is the --policy file; give a new file "
                               "(the tuned policy is written beside the original, for review)")
        structure_policy(new_doc, str(target))  # what we write must load
        write_text_atomic(target, new_text)
        print(f"wrote {target}")
    return 0


def _fmt(x: Any, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def _print_table(key: str, entries: dict[str, dict[str, Any]]) -> None:
    head = [key, "samples", "brier", "ece", "current", "recommended", "n", "successes", "wilson 95%", "status"]
    rows = [head]
    for name, e in entries.items():
        cal = e["calibration"]
        interval = "-" if e["interval"] is None else f"[{e['interval'][0]:.3f}, {e['interval'][1]:.3f}]"
        rows.append([name, str(e["total_samples"]), _fmt(cal["brier"]), _fmt(cal["ece"]), f"{e['current']:g}",
                     f"{e['recommended']:g}", str(e["n"]), str(e["successes"]), interval, e["status"]])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
