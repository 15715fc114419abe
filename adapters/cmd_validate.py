"""``interlock validate``: check the input files and report every problem; run nothing."""

from __future__ import annotations

import argparse

from interlock.adapters.loading import load_inputs

HELP = """\
Check a catalog, plans and (optionally) a policy without running anything.
Every problem of every file is reported together, each with the file, the
field (JSON pointer) and what was expected; the exit code is then 2.

Example:
  interlock validate --catalog examples/basic/catalog.yaml \\
                     --plans examples/basic/plans.yaml --policy examples/basic/policy.yaml
  ok: 6 tools, 3 plans, 5 steps
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate", help="check inputs only; report every error",
        description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--catalog", required=True, metavar="FILE", help="tool catalog (YAML or JSON)")
    p.add_argument("--plans", required=True, metavar="FILE", help="plans (YAML or JSON)")
    p.add_argument("--policy", metavar="FILE",
                   help="policy (YAML or JSON); default: the safe built-in policy (no LIVE)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    inputs = load_inputs(args.catalog, args.plans, args.policy)
    steps = sum(len(plan.steps) for plan in inputs.plans.plans)
    print(f"ok: {len(inputs.catalog.tools)} tools, {len(inputs.plans.plans)} plans, {steps} steps")
    return 0
