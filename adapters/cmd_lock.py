"""``interlock lock`` / ``interlock unlock``: the operator's hand on the system lock.

The lock lives in the durable store, outlives runs, and a running
``interlock run`` against the same state directory follows it within a
fraction of a second. Every change is audited in the store's hash-chained
``system`` log (``interlock verify-log --state-dir DIR --run system``).
"""

from __future__ import annotations

import argparse
import getpass
import time

from interlock.adapters.cli import UsageProblem

SYSTEM_RUN = "system"

LOCK_HELP = """\
Lock the system: from now on no call runs LIVE (and none runs DRY_RUN under
lock_mode: mock_only), in every run using this state directory.

example:
  interlock lock --reason "incident 4711: investigating a bad deploy" --by alice
"""

UNLOCK_HELP = """\
Unlock the system. Only an operator unlocks, and always with a reason.

example:
  interlock unlock --reason "incident 4711 resolved" --by alice
"""


def register(subs: argparse._SubParsersAction) -> None:
    for name, text, fn in (("lock", LOCK_HELP, run_lock), ("unlock", UNLOCK_HELP, run_unlock)):
        p = subs.add_parser(name, help=text.splitlines()[0].rstrip(":"), description=text,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--reason", required=True, help="why (recorded in the audit log)")
        p.add_argument("--by", default=None, help="who (default: the current user)")
        p.add_argument("--state-dir", default=".interlock", help="durable store (default .interlock)")
        p.set_defaults(func=fn)


def _who(args: argparse.Namespace) -> str:
    if args.by:
        return args.by
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (containers)
        return "operator"


def change_lock(state_dir: str, state: str, reason: str, by: str) -> tuple[str, str]:
    """Set the durable lock and append the change to the store's system log."""
    from interlock.adapters.store import SQLiteStore
    from interlock.core.audit import link_hash

    if not reason.strip():
        raise UsageProblem(f"{state[:-2] if state.endswith('ed') else state} needs a non-empty --reason")
    with SQLiteStore.open(state_dir) as store:
        before = store.system_state().get("state") or "unlocked"
        now = time.time()
        if store.get_run(SYSTEM_RUN) is None:
            store.create_run(SYSTEM_RUN, digests={}, meta={"kind": "system lock log"})
        count, prev = store.head(SYSTEM_RUN)
        line = {
            "schema_version": 1, "run_id": SYSTEM_RUN, "seq": count, "time": now,
            "machine": "system", "call_id": None, "plan_id": None, "agent_id": None,
            "from": before, "trigger": "lock" if state == "locked" else "unlock", "to": state,
            "rule": "operator." + ("lock" if state == "locked" else "unlock"),
            "detail": {"reason": reason, "by": by}, "prev_hash": prev,
        }
        line["hash"] = link_hash(prev, line)
        store.commit_step(SYSTEM_RUN, transitions=[line])
        store.set_system_state(state, reason, by, now)
    return before, state


def run_lock(args: argparse.Namespace) -> int:
    before, after = change_lock(args.state_dir, "locked", args.reason, _who(args))
    print(f"system {after} (was {before}): {args.reason}")
    return 0


def run_unlock(args: argparse.Namespace) -> int:
    before, after = change_lock(args.state_dir, "unlocked", args.reason, _who(args))
    print(f"system {after} (was {before}): {args.reason}")
    return 0
