"""A multi-agent run with real side effects, for the crash sweep.

Run as ``python crash_scenario.py DIR [CRASH_AT]``: runs the scenario with its
state in DIR/state and workspace DIR/ws, and dies with ``os._exit(77)`` right
after the CRASH_AT-th durable write of the store (0 = never). Prints the
number of durable writes when it finishes.

Side effects: the irreversible tool ``fx.bump`` appends one line to
``ws/counters/<key>`` per LIVE execution, so "at most once" is countable.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

CATALOG = {
    "schema_version": 1,
    "tools": [
        {"name": "fx.bump", "risk": "low", "reversible": False, "idempotent": False,
         "effects": {"writes": ["counter:{key}"]},
         "input_schema": {"type": "object", "required": ["key"], "properties": {"key": {"type": "string"}}}},
        {"name": "fx.touch", "risk": "low", "reversible": False, "idempotent": True, "retries": 1,
         "effects": {"writes": ["file:{name}"]},
         "input_schema": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}},
        {"name": "fx.put", "risk": "medium", "reversible": True, "idempotent": True,
         "rollback": {"tool": "fx.unput", "args": {"name": "{name}"}},
         "effects": {"writes": ["file:{name}"]},
         "input_schema": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}},
        {"name": "fx.unput", "risk": "medium", "reversible": False, "idempotent": True,
         "input_schema": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}},
        {"name": "fx.fail", "risk": "low", "reversible": False, "idempotent": True,
         "input_schema": {"type": "object", "properties": {}}},
    ],
}


def _step(id, tool, after=(), **args):
    return {"id": id, "tool": tool, "confidence": 0.95, "args": args, "after": list(after)}


PLANS = {
    "schema_version": 1,
    "plans": [
        {"plan_id": "a", "agent_id": "agent-a", "priority": 2, "steps": [
            _step("k1", "fx.bump", key="k1"), _step("t1", "fx.touch", ["k1"], name="shared"),
            _step("k2", "fx.bump", ["t1"], key="k2")]},
        {"plan_id": "b", "agent_id": "agent-b", "priority": 1, "steps": [
            _step("k1", "fx.bump", key="k1"),  # duplicate irreversible key: deduplicated
            _step("t1", "fx.touch", name="shared"), _step("k3", "fx.bump", ["t1"], key="k3")]},
        {"plan_id": "c", "agent_id": "agent-c", "steps": [
            _step("p1", "fx.put", name="c1"), _step("k4", "fx.bump", ["p1"], key="k4"),
            _step("boom", "fx.fail", ["k4"])]},  # fails: the saga undoes p1
    ],
}

POLICY = {"schema_version": 1, "allow_live": True, "max_concurrency": 3}


def register_tools(ws: Path) -> None:
    from interlock.adapters.registry import default_registry as reg

    def bump(key):
        d = ws / "counters"
        d.mkdir(exist_ok=True)
        with open(d / key, "a") as f:
            f.write("x\n")
            f.flush()
            os.fsync(f.fileno())
        return {"key": key}

    def touch(name):
        (ws / name).write_text("t")
        return {}

    def put(name):
        (ws / name).write_text("put")
        return {}

    def unput(name):
        (ws / name).unlink(missing_ok=True)
        return {}

    def fail():
        raise RuntimeError("deliberate failure")

    for name, fn in (("fx.bump", bump), ("fx.touch", touch), ("fx.put", put),
                     ("fx.unput", unput), ("fx.fail", fail)):
        if reg.live(name) is None:
            reg.register_live(name, fn)


def main(root: Path, crash_at: int, fail_at: int | None = None) -> int:
    import interlock.adapters.finish as finish
    from interlock.adapters.bootstrap import Runtime
    from interlock.adapters.store import SQLiteStore
    from interlock.core.convert import structure_catalog, structure_plans, structure_policy

    ws = root / "ws"
    ws.mkdir(parents=True, exist_ok=True)
    register_tools(ws)
    writes = {"n": 0}

    def on_write(n: int) -> None:
        writes["n"] = n
        if n == crash_at:
            os._exit(77)  # die right after the n-th durable write

    finish.open_store = lambda state_dir: SQLiteStore.open(state_dir, on_write=on_write,
                                                           fail_on_write=fail_at)
    catalog = structure_catalog(CATALOG, "catalog")
    rt = Runtime(catalog=catalog, policy=structure_policy(POLICY, "policy", catalog),
                 state_dir=root / "state")
    from interlock.adapters.cli import EnvironmentProblem

    try:
        result = rt.run(structure_plans(PLANS, "plans", catalog), run_id="crash-run")
    except EnvironmentProblem as exc:  # what the CLI maps to exit 3
        print(f"environment failed: {exc}", file=sys.stderr)
        return 3
    print(f"writes={writes['n']} exit={result.exit_code}")
    return 0


def resume(root: Path) -> int:
    from interlock.adapters.cli import main as cli

    register_tools(root / "ws")
    return cli(["resume", "crash-run", "--state-dir", str(root / "state"), "--quiet"])


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[2] == "resume":
        sys.exit(resume(Path(sys.argv[1])))
    if len(sys.argv) > 2 and sys.argv[2].startswith("fail"):
        sys.exit(main(Path(sys.argv[1]), 0, fail_at=int(sys.argv[2][4:])))
    sys.exit(main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0))
