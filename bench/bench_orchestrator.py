"""Orchestrator overhead per call, for a 10k-call multi-agent MOCK run.

Prints ratios against two baselines measured in the same run (absolute times
on a shared machine mean little):

- floor: a hand-written loop doing the least any scheduler must do per call
  (a dict of states, dependency counters, a ready queue, one record per call);
- intake: detection and scheduling alone (core.intake), which the orchestrator
  includes.

Reported: orchestrator µs/call, orchestrator / floor, and the end-to-end
runner (asyncio loop, SQLite group commit, the seven outputs) per call.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

from interlock.core.convert import structure_catalog, structure_plans
from interlock.core.intake import intake
from interlock.core.model import Policy
from interlock.core.orchestrator import Orchestrator
from interlock.core.ports import ExecutionResult
from interlock.core.commands import Execute, ClaimIntent

N_CALLS = 10_000
STEPS = 5


def workload(n: int, seed: int = 7):
    rnd = random.Random(seed)
    tools = [{"name": f"w{i}", "risk": rnd.choice(["low", "medium", "high"]), "idempotent": True,
              "supports_dry_run": True, "effects": {"writes": ["file:{path}"]},
              "input_schema": {"type": "object", "required": ["path"],
                               "properties": {"path": {"type": "string"}}}} for i in range(5)]
    tools += [{"name": f"r{i}", "risk": "low", "idempotent": True, "effects": {"reads": ["file:{path}"]},
               "input_schema": {"type": "object", "required": ["path"],
                                "properties": {"path": {"type": "string"}}}} for i in range(5)]
    catalog = structure_catalog({"schema_version": 1, "tools": tools}, "bench")
    plans = []
    for a in range(n // STEPS):
        steps = []
        for s in range(STEPS):
            f = int(25_000 * rnd.random() ** 3)  # skewed: a few files are hot
            st = {"id": f"s{s}", "tool": rnd.choice(tools)["name"], "confidence": round(rnd.random(), 2),
                  "args": {"path": f"f{f}"}}
            if s and rnd.random() < 0.5:
                st["after"] = [f"s{s - 1}"]
            steps.append(st)
        plans.append({"plan_id": f"p{a}", "agent_id": f"agent{a % 1000}", "priority": rnd.randint(0, 5),
                      "steps": steps})
    return catalog, structure_plans({"schema_version": 1, "plans": plans}, "bench", catalog)


def run_orchestrator(catalog, plans) -> float:
    t0 = time.perf_counter()
    o = Orchestrator(catalog, Policy(), run_id="bench")
    queue = deque(o.submit(plans, 0.0))
    ok = ExecutionResult(ok=True, result={})
    now = 0.0
    while queue:
        cmd = queue.popleft()
        now += 0.001
        if isinstance(cmd, Execute):
            queue.extend(o.execution_finished(cmd.call_id, ok, now))
        elif isinstance(cmd, ClaimIntent):
            queue.extend(o.intent_answered(cmd.call_id, None, now))
    assert o.done
    return time.perf_counter() - t0


def run_floor(plans) -> float:
    """The least per call: states, dependency counters, a ready queue, a record."""
    t0 = time.perf_counter()
    calls, deps, dependents = {}, {}, {}
    for p in plans.plans:
        for s in p.steps:
            cid = f"{p.plan_id}/{s.id}"
            calls[cid] = "waiting"
            deps[cid] = len(s.after)
            for a in s.after:
                dependents.setdefault(f"{p.plan_id}/{a}", []).append(cid)
    ready = deque(c for c, n in deps.items() if n == 0)
    log = []
    while ready:
        c = ready.popleft()
        calls[c] = "running"
        log.append((c, "running"))
        calls[c] = "succeeded"
        log.append((c, "succeeded"))
        for d in dependents.get(c, ()):
            deps[d] -= 1
            if deps[d] == 0:
                ready.append(d)
    return time.perf_counter() - t0


def run_intake(catalog, plans) -> float:
    t0 = time.perf_counter()
    intake(plans, catalog, Policy())
    return time.perf_counter() - t0


def run_end_to_end(catalog, plans) -> float:
    from interlock.adapters import Runtime

    with tempfile.TemporaryDirectory() as tmp:
        rt = Runtime.from_catalog(catalog, entry_points=False, state_dir=Path(tmp) / "state")
        t0 = time.perf_counter()
        asyncio.run(rt.arun(plans, out=Path(tmp) / "out"))
        return time.perf_counter() - t0


def best(fn, *args, repeat: int = 3) -> float:
    return min(fn(*args) for _ in range(repeat))


def main() -> int:
    catalog, plans = workload(N_CALLS)
    floor = best(run_floor, plans)
    det = best(run_intake, catalog, plans)
    orch = best(run_orchestrator, catalog, plans)
    e2e = best(run_end_to_end, catalog, plans, repeat=1)
    per = lambda t: t / N_CALLS * 1e6  # noqa: E731
    print(f"{N_CALLS} calls from 1000 agents, Zipf-like hot files, MOCK")
    print(f"  floor (hand-written scheduler)      {per(floor):8.1f} µs/call")
    print(f"  intake (conflicts + scheduling)     {per(det):8.1f} µs/call")
    print(f"  orchestrator (controller, records)  {per(orch):8.1f} µs/call")
    print(f"  end to end (runner, SQLite, files)  {per(e2e):8.1f} µs/call")
    print(f"ratio orchestrator / floor            {orch / floor:8.1f}x")
    print(f"ratio orchestrator / intake           {orch / det:8.1f}x")
    print(f"ratio end-to-end / orchestrator       {e2e / orch:8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
