"""Write (or check) the files generated from the controller definition.

``ARTIFACTS`` maps a path relative to the repository root to the function
producing its text; ``tests/unit/test_generated_artifacts.py`` fails when a
committed file differs from its producer, so the diagrams and the
transition table cannot drift from the ``transitions.Machine`` that runs.

    python -m interlock.adapters.generate            # write them
    python -m interlock.adapters.generate --check    # exit 1 listing drifted files
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

from interlock.core.controller import render

#: Relative path -> producer of its exact text.
def _json_text(schema: dict) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def _schema_artifacts() -> dict[str, Callable[[], str]]:
    """The JSON Schemas of the three inputs (from the attrs model) and the seven outputs."""
    from interlock.core.output_schemas import render_output_schemas
    from interlock.core.schemas import input_schemas

    out: dict[str, Callable[[], str]] = {}
    for name in input_schemas():
        out[f"specs/schemas/{name}"] = lambda name=name: _json_text(input_schemas()[name])
    for name in render_output_schemas():
        out[f"specs/schemas/{name}"] = lambda name=name: render_output_schemas()[name]
    return out


ARTIFACTS: dict[str, Callable[[], str]] = {
    "docs/controller.mmd": render.mermaid,
    "docs/controller.dot": render.dot,
    "specs/controller.md": render.transition_table_md,
    **_schema_artifacts(),
}

SVG_PATH = "docs/controller.svg"


def repo_root() -> Path:
    """The checkout this module lives in (``adapters/`` is one level below it)."""
    return Path(__file__).resolve().parent.parent


def drifted(root: Path) -> list[str]:
    """Paths whose committed text differs from what their producer makes now."""
    out = []
    for rel, produce in ARTIFACTS.items():
        path = root / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != produce():
            out.append(rel)
    return out


def render_svg(dot_text: str) -> bytes:
    """SVG bytes from Graphviz ``dot``; OSError when it is missing or fails."""
    exe = shutil.which("dot")
    if exe is None:
        raise FileNotFoundError("Graphviz 'dot' is not installed")
    proc = subprocess.run([exe, "-Tsvg"], input=dot_text.encode("utf-8"), capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise OSError(f"dot -Tsvg failed: {proc.stderr.decode('utf-8', 'replace').strip()}")
    return proc.stdout


def write_all(root: Path) -> list[str]:
    """Write every artifact whose text changed (and the SVG when ``dot`` exists)."""
    written = []
    for rel, produce in ARTIFACTS.items():
        path, text = root / rel, produce()
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
            written.append(rel)
    if shutil.which("dot"):
        svg = render_svg(render.dot())
        path = root / SVG_PATH
        if not path.is_file() or path.read_bytes() != svg:
            path.write_bytes(svg)
            written.append(SVG_PATH)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m interlock.adapters.generate",
        description="Write the diagrams and the transition table generated from the controller.",
        epilog="example:\n  python -m interlock.adapters.generate --check   # exit 1 when a file drifted",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 listing drifted files")
    parser.add_argument("--root", type=Path, default=None, help="repository root (default: this checkout)")
    args = parser.parse_args(argv)
    root = args.root or repo_root()
    if args.check:
        stale = drifted(root)
        for rel in stale:
            print(f"drifted: {rel} (run: python -m interlock.adapters.generate)")
        if not stale:
            print(f"up to date: {', '.join(ARTIFACTS)}")
        return 1 if stale else 0
    written = write_all(root)
    for rel in written:
        print(f"wrote {rel}")
    if not written:
        print("nothing to write: every generated file is up to date")
    if not shutil.which("dot"):
        print(f"skipped {SVG_PATH}: Graphviz 'dot' is not installed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
