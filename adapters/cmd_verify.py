"""``interlock verify``: the exhaustive model check of the controller.

Walks every path of the controller over the abstract domain of
``interlock.core.controller.verify`` and checks I1, I2, I3, I8 and I9 (plus
the retry rule of I4 and I7). Exit 0 when no violation is found, 1 otherwise.
The deeper randomized run is ``make verify`` (hypothesis, deep profile).
"""

from __future__ import annotations

import argparse

from interlock.adapters.cli import EXIT_OK, EXIT_PROBLEMS
from interlock.core.controller.verify import Report, run_model_check

EXAMPLE = """\
example:
  interlock verify
  interlock verify --show 20     # print up to 20 violations with their paths"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "verify",
        help="exhaustive model check of the controller (I1 I2 I3 I8 I9)",
        description="Walk every path of the execution controller over an abstract domain of "
                    "policies, contracts, confidences at each threshold, lock states and outcomes.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--show", type=int, default=10, metavar="N", help="violations to print (default 10)")
    p.set_defaults(func=run)


def format_report(report: Report, show: int = 10) -> str:
    lines = [
        "interlock verify: exhaustive model check of the execution controller",
        f"  states {report.states}, edges {report.transitions}",
        f"  scenarios {report.scenarios:,} ({report.signatures:,} distinct behaviours walked)",
        f"  paths walked {report.paths_walked:,} (standing for {report.paths_covered:,}), "
        f"steps {report.steps:,}",
        "",
        f"  {'invariant':<14} {'checks':>10} {'violations':>11}",
    ]
    per = report.violations_by_invariant
    for name, n in report.checks.items():
        lines.append(f"  {name:<14} {n:>10,} {per.get(name, 0):>11,}")
    lines.append("")
    for note in report.notes:
        lines.append(f"  note: {note}")
    if report.ok:
        lines.append("result: OK, no violation")
    else:
        lines.append(f"result: {report.violation_count} violation(s)"
                     + (f"; the first {min(show, len(report.violations))}:" if show else ""))
        for v in report.violations[:show]:
            lines.append(f"  [{v.invariant}] {v.detail}")
            lines.append(f"      scenario: {v.scenario}")
            if v.path:
                lines.append(f"      path: {' / '.join(v.path)}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    report = run_model_check()
    print(format_report(report, max(0, args.show)))
    return EXIT_OK if report.ok else EXIT_PROBLEMS
