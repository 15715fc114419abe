"""``interlock resolve RUN CALL --outcome succeeded|failed --by NAME``.

Settles a call whose LIVE outcome was lost (``outcome_unknown``): a person
checked what happened and says so. The decision is appended to the run's
hash-chained log with who made it; the outputs are rewritten from the store.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from interlock.adapters.cli import UsageProblem

HELP = __doc__.split("\n", 1)[1] + """
example:
  interlock resolve run-20261125T101500Z-3fa2c1 release/publish --outcome succeeded --by alice
"""


def register(subs: argparse._SubParsersAction) -> None:
    p = subs.add_parser("resolve", help="settle an outcome_unknown call", description=HELP,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_id", metavar="RUN")
    p.add_argument("call_id", metavar="CALL", help="plan_id/step_id")
    p.add_argument("--outcome", required=True, choices=["succeeded", "failed"])
    p.add_argument("--by", required=True, help="who checked (recorded in the audit log)")
    p.add_argument("--state-dir", default=".interlock")
    p.add_argument("--out", help="rewrite the seven outputs here (default: the run's --out)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from interlock.adapters.export import export_run
    from interlock.adapters.finish import open_store
    from interlock.adapters.recovery import rebuild
    from interlock.core.controller.states import State
    from interlock.core.errors import InvalidTransition, OrchestrationError

    if not args.by.strip():
        raise UsageProblem("--by must name who settled the call")
    store = open_store(args.state_dir)
    try:
        rebuilt = rebuild(store, args.run_id)
        orch = rebuilt.orchestrator
        if args.call_id not in orch.calls:
            raise UsageProblem(f"run {args.run_id} has no call {args.call_id!r}")
        state = orch.calls[args.call_id].state
        if state is not State.OUTCOME_UNKNOWN:
            raise UsageProblem(f"call {args.call_id} is {state.value}, not outcome_unknown: nothing to resolve")
        try:
            orch.resolve(args.call_id, args.outcome == "succeeded", args.by, time.time())
        except (InvalidTransition, OrchestrationError) as exc:
            raise UsageProblem(str(exc)) from exc
        from interlock.adapters.clocks import SystemClock
        from interlock.adapters.runner import Runner

        runner = Runner(catalog=orch.catalog, policy=orch.policy, executor=None, gate=None,
                        clock=SystemClock(), run_id=args.run_id, store=store)
        runner.attach(rebuilt)
        runner.persist()
        run_row = store.get_run(args.run_id)
        store.finish_run(args.run_id, status=run_row["status"] if run_row["status"] != "running" else "finished",
                         exit_code=orch.exit_code())
        out = args.out or rebuilt.meta.get("out")
        print(f"{args.call_id}: outcome_unknown -> {orch.calls[args.call_id].state.value} (by {args.by})")
        if out:
            export_run(store, args.run_id, Path(out), replace=True)
            print(f"outputs rewritten in {out}/")
        return 0
    finally:
        store.close()
