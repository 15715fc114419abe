"""``interlock report``: a self-contained HTML report of a run directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from interlock.adapters.cli import EXIT_OK

DESCRIPTION = """\
Write one HTML file that shows a run at a glance: the controller's state
diagram with how many calls took each transition, a reliability diagram
(predicted confidence against observed success), modes by risk, health and
anomalies over time, conflicts, rollbacks and every call with the rule that
decided its mode. The file is self-contained (inline CSS and SVG, nothing
fetched), so it can be mailed, archived or opened offline."""

EXAMPLE = """\
examples:
  interlock report runs/r1                       # writes runs/r1/report.html
  interlock report runs/r1 --out /tmp/r1.html

exit codes: 0 written; 2 the directory is not a complete, valid run (every
problem is listed with file, line and field); 3 the report cannot be written."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="a self-contained HTML report of a run",
        description=DESCRIPTION,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="a run directory written by interlock run")
    p.add_argument("--out", type=Path, metavar="FILE", help="where to write the HTML (default RUN_DIR/report.html)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from interlock.adapters.report import write_report

    path = write_report(args.run_dir, args.out)
    print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK
