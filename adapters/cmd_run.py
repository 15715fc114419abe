"""``interlock run``: catalog, plans, policy -> a run and its seven outputs."""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

from interlock.adapters.cli import UsageProblem

HELP = """\
Run plans of tool calls through the interlock and write the seven outputs.

Every call runs as MOCK, DRY_RUN or LIVE as the policy decides; LIVE is off
unless the policy says `allow_live: true` (or you pass --live). Approvals are
denied unless a rules file (--approvals) or --interactive says otherwise.

example:
  interlock run --catalog examples/fs/catalog.yaml --plans examples/fs/plans.yaml \\
      --policy examples/fs/policy.yaml --approvals examples/fs/approvals.yaml \\
      --tools examples/tools/fs_tools.py --out runs/demo

exit codes: 0 every call succeeded as planned; 1 some call failed, was rejected,
cancelled or rolled back; 2 invalid input (nothing ran); 3 the environment failed.
"""


def register(subs: argparse._SubParsersAction) -> None:
    p = subs.add_parser("run", help="run plans and write the seven outputs", description=HELP,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--catalog", required=True, help="tool catalog (YAML or JSON)")
    p.add_argument("--plans", required=True, help="plans (YAML or JSON)")
    p.add_argument("--policy", help="policy (YAML or JSON); default: the safe defaults")
    p.add_argument("--out", required=True, help="directory for the seven outputs")
    p.add_argument("--approvals", help="approval rules file (YAML); default: deny all")
    p.add_argument("--interactive", action="store_true",
                   help="ask on the terminal for approvals (refused when stdin is not a TTY)")
    p.add_argument("--tools", action="append", default=[], metavar="MODULE",
                   help="module or .py file registering LIVE tools with @tool (repeatable)")
    p.add_argument("--live", action="store_true",
                   help="allow LIVE for this run (same as allow_live: true in the policy)")
    p.add_argument("--state-dir", default=".interlock",
                   help="durable store: transition log, intent ledger, lock (default .interlock)")
    p.add_argument("--fake-clock", action="store_true",
                   help="deterministic time: same inputs and --seed give byte-identical outputs")
    p.add_argument("--seed", type=int, help="seed for a deterministic run id (with --fake-clock)")
    p.add_argument("--run-id", help="use this run id instead of a generated one")
    p.add_argument("--quiet", action="store_true", help="no progress lines, only the summary")
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve Prometheus metrics on 127.0.0.1:PORT/metrics while the run lasts")
    p.add_argument("--metrics-textfile", metavar="FILE",
                   help="write Prometheus metrics to FILE when the run ends (node-exporter textfile format)")
    p.add_argument("--otel", action="store_true",
                   help="emit OpenTelemetry spans and metrics through the global providers "
                        "(e.g. under opentelemetry-instrument)")
    p.set_defaults(func=run)


def _observers(args: argparse.Namespace) -> tuple:
    """Observability asked for on the command line (docs/observability.md)."""
    observers: list = []
    if args.metrics_port is not None or args.metrics_textfile:
        from interlock.adapters.prom import PrometheusObserver

        prom = PrometheusObserver(textfile=args.metrics_textfile)
        if args.metrics_port is not None:
            prom.serve(args.metrics_port)
        observers.append(prom)
    if args.otel:
        from interlock.adapters.otel import OtelObserver

        observers.append(OtelObserver())
    return tuple(observers)


def run(args: argparse.Namespace) -> int:
    from interlock.adapters.bootstrap import Runtime
    from interlock.adapters.console import Progress, print_summary
    from interlock.adapters.sinks import StreamSink

    out = Path(args.out)  # checked by Runtime.arun (prepare_out_dir) before anything runs
    if args.seed is not None and not args.fake_clock:
        raise UsageProblem("--seed needs --fake-clock (a seed only makes sense for a deterministic run)")
    from interlock.adapters.loading import load_inputs

    inputs = load_inputs(args.catalog, args.plans, args.policy)  # every problem of every file, or nothing runs
    gc.freeze()  # the loaded inputs live for the whole run: keep them out of every GC pass
    progress = None if args.quiet else Progress(sys.stderr)
    rt = Runtime.from_inputs(
        inputs, approvals=args.approvals, tools=args.tools,
        live=args.live, fake_clock=args.fake_clock, seed=args.seed, state_dir=args.state_dir,
        interactive=args.interactive, progress=progress, observers=_observers(args),
        sinks=() if args.quiet else (StreamSink(sys.stderr),),
    )
    planset = inputs.plans
    result = rt.run(planset, out=out, run_id=args.run_id)
    if progress is not None:
        progress.close()
    print_summary(result, out)
    if result.interrupted:
        return 130 if result.exit_code == 0 else result.exit_code
    return result.exit_code
