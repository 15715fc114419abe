"""``interlock diagram``: the controller as Mermaid, DOT or SVG.

Mermaid and DOT are generated text (the same as docs/controller.mmd and
docs/controller.dot); SVG needs Graphviz ``dot`` on PATH.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from interlock.adapters.cli import EXIT_OK, EnvironmentProblem
from interlock.adapters.generate import render_svg
from interlock.core.controller import render

MISSING_DOT = "Graphviz 'dot' is not installed; use --format mermaid or dot, or install graphviz"

EXAMPLE = """\
examples:
  interlock diagram                                  # Mermaid on stdout
  interlock diagram --format dot --out controller.dot
  interlock diagram --format svg --out controller.svg   # needs Graphviz 'dot'"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "diagram",
        help="the controller state machine as Mermaid, DOT or SVG",
        description="Draw the execution controller (one state machine per tool call) from its definition.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--format", choices=("mermaid", "dot", "svg"), default="mermaid",
                   help="output format (default: mermaid)")
    p.add_argument("--out", type=Path, metavar="FILE", help="write to FILE instead of stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.format == "svg":
        if shutil.which("dot") is None:
            raise EnvironmentProblem(MISSING_DOT)
        data = render_svg(render.dot())
    else:
        data = (render.mermaid() if args.format == "mermaid" else render.dot()).encode("utf-8")
    if args.out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(data)
        print(f"wrote {args.out} ({args.format})", file=sys.stderr)
    return EXIT_OK
