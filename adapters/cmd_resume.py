"""``interlock resume RUN``: continue a run that crashed or was killed.

The run is rebuilt from the durable store (its inputs, its events, its
hash-chained log). What was in flight when it stopped: a LIVE call of a
non-idempotent tool may have had its side effect, so it is never run again:
it becomes ``outcome_unknown`` (settle it with ``interlock resolve``).
Idempotent LIVE calls, dry runs and mocks run again; pending approvals and
ledger claims are asked again; everything else continues.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

HELP = __doc__.split("\n", 1)[1] + """
example:
  INTERLOCK_WORKSPACE=ws interlock resume run-20261125T101500Z-3fa2c1 --state-dir .interlock --out runs/r1
"""


def register(subs: argparse._SubParsersAction) -> None:
    p = subs.add_parser("resume", help="continue a crashed run from the durable store", description=HELP,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_id", metavar="RUN", help="the run id (see the summary, or `interlock export --list`)")
    p.add_argument("--state-dir", default=".interlock", help="durable store (default .interlock)")
    p.add_argument("--out", help="where to write the seven outputs (default: the run's original --out)")
    p.add_argument("--tools", action="append", default=None, metavar="MODULE",
                   help="modules with LIVE tools (default: the ones the run was started with)")
    p.add_argument("--approvals", help="approval rules file (default: the run's original one)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from interlock.adapters.bootstrap import make_gate
    from interlock.adapters.clocks import SystemClock
    from interlock.adapters.console import Progress, print_summary
    from interlock.adapters.executors import Executor
    from interlock.adapters.finish import finish_run, open_store
    from interlock.adapters.outputs import OUTPUTS
    from interlock.adapters.recovery import rebuild
    from interlock.adapters.registry import default_registry
    from interlock.adapters.runner import Runner

    store = open_store(args.state_dir)
    try:
        run_row = store.get_run(args.run_id)
        rebuilt = rebuild(store, args.run_id)
        orch, meta = rebuilt.orchestrator, rebuilt.meta
        out = args.out or meta.get("out")
        if out and all((Path(out) / n).exists() for n in OUTPUTS.names()) and run_row["status"] != "running":
            out = None  # finished and exported already: nothing to rewrite
        if run_row["status"] != "running" and orch.done:
            print(f"run {args.run_id} already finished (exit code {run_row['exit_code']}); nothing to resume")
            return int(run_row["exit_code"] or 0)
        default_registry.load_entry_points()
        for spec in (args.tools if args.tools is not None else meta.get("tools", [])):
            default_registry.load_module(spec)
        clock = SystemClock()
        gate = make_gate(args.approvals or meta.get("approvals"), interactive=False, clock=clock)
        progress = None if args.quiet else Progress(sys.stderr)
        runner = Runner(catalog=orch.catalog, policy=orch.policy,
                        executor=Executor(default_registry, orch.catalog), gate=gate, clock=clock,
                        run_id=args.run_id, store=store, progress=progress)
        if out is not None:
            _clear_outputs(Path(out))
        result = asyncio.run(runner.resume(rebuilt))
        if progress is not None:
            progress.close()
        result = finish_run(runner, result, planset=rebuilt.plans, inputs=meta.get("inputs", {}),
                            started=meta.get("started", 0.0), out=out, store=store)
    finally:
        store.close()
    print_summary(result, Path(out) if out else None)
    return result.exit_code


def _clear_outputs(out: Path) -> None:
    """A crashed run's outputs are partial at best: the store is the truth; rewrite them."""
    from interlock.adapters.outputs import OUTPUTS

    for name in OUTPUTS.names():
        p = out / name
        if p.exists():
            p.unlink()
