"""``interlock export RUN --out DIR``: the seven outputs of a stored run."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = """\
Write the seven outputs of a run kept in the durable store (the JSONL files
are exports of the store, the source of truth). --list shows the stored runs.

example:
  interlock export run-20261125T101500Z-3fa2c1 --out runs/copy --state-dir .interlock
  interlock export --list
"""


def register(subs: argparse._SubParsersAction) -> None:
    p = subs.add_parser("export", help="write the seven outputs of a stored run", description=HELP,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_id", metavar="RUN", nargs="?")
    p.add_argument("--out", help="a new directory for the outputs")
    p.add_argument("--state-dir", default=".interlock")
    p.add_argument("--list", action="store_true", help="list the runs in the store")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from interlock.adapters.cli import UsageProblem
    from interlock.adapters.export import export_run
    from interlock.adapters.finish import open_store

    store = open_store(args.state_dir)
    try:
        if args.list:
            for r in store.list_runs():
                print(f"{r['run_id']}  {r['status']}  exit={r['exit_code']}  transitions={r['head_seq'] + 1}")
            return 0
        if not args.run_id or not args.out:
            raise UsageProblem("export needs RUN and --out DIR (or --list)")
        paths = export_run(store, args.run_id, Path(args.out))
        print(f"exported {args.run_id} to {args.out}/ ({len(paths)} files)")
        return 0
    finally:
        store.close()
