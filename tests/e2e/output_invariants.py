"""Check SPEC section 9 on the seven outputs of a run, as an outside auditor would.

Only the files are used (plus the catalog and plans the run was given): the
invariants must be visible in what interlock writes, not only in its memory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from interlock.adapters.outputs import validate_run_dir
from interlock.core.audit import verify_chain
from interlock.core.controller.states import FINAL, TERMINAL
from interlock.core.model import Catalog, PlanSet
from interlock.core.replay import compare_with_summary, replay_states

RATES = ("tool_success_rate", "rollback_frequency", "conflict_rate", "live_execution_ratio",
         "confidence_drift", "approval_rate")


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def check_run_dir(run: Path, catalog: Catalog, plans: PlanSet) -> list[str]:
    problems = list(validate_run_dir(run))
    summary = json.loads((run / "orchestration_summary.json").read_text())
    health = json.loads((run / "system_health.json").read_text())
    lines = _jsonl(run / "execution_state_transitions.jsonl")
    execs = _jsonl(run / "tool_execution_log.jsonl")
    rollbacks = _jsonl(run / "rollback_events.jsonl")

    # I10: chained, complete, replayable, summary recomputable.
    audit = summary["audit"]
    chk = verify_chain(lines, (audit["transitions"], audit["head_hash"]))
    if not chk.ok:
        problems.append(f"I10: audit chain: {chk.problem}")
    replayed = replay_states(lines)
    problems += [f"I10: replay: {p}" for p in replayed.problems]
    problems += [f"I10: summary: {d}" for d in compare_with_summary(replayed, summary)]

    deps = {f"{p.plan_id}/{s.id}": [a if "/" in a else f"{p.plan_id}/{a}" for a in s.after]
            for p in plans.plans for s in p.steps}
    state: dict[str, str] = {}
    locked = False
    live_by_key: dict[tuple[str, str], set[str]] = {}
    key_of = {r["call_id"]: (r["tool"], r["idempotency_key"]) for r in summary["calls"]}
    running: set[str] = set()
    for ln in lines:
        if ln["machine"] == "system":
            locked = ln["to"] == "locked"
            continue
        if ln["machine"] != "call":
            continue
        cid, src, dst = ln["call_id"], ln["from"], ln["to"]
        if src in {s.value for s in TERMINAL}:
            problems.append(f"I8: {cid} leaves terminal state {src} (seq {ln['seq']})")
        if src == "succeeded" and dst != "rolling_back":
            problems.append(f"I8: {cid} leaves succeeded for {dst}")
        if src == "outcome_unknown" and ln["trigger"] != "resolve":
            problems.append(f"I8: {cid} leaves outcome_unknown by {ln['trigger']}")
        state[cid] = dst
        if dst.startswith("running_"):
            running.add(cid)
            for d in deps.get(cid, []):
                if d in state and state[d] != "succeeded":
                    problems.append(f"I5: {cid} started while its dependency {d} was {state[d]}")
        elif src.startswith("running_"):
            running.discard(cid)
        if dst == "running_live":
            det = ln["detail"]
            if locked:
                problems.append(f"I2: {cid} went LIVE while the system was locked")
            if not det.get("allow_live") or det.get("locked"):
                problems.append(f"I1: {cid} went LIVE without allow_live or while locked")
            if det.get("confidence", 0) < det.get("thresholds", {}).get("live", 2):
                problems.append(f"I1: {cid} went LIVE below its live threshold")
            if det.get("approval_required") and not det.get("approved_by"):
                problems.append(f"I1: {cid} went LIVE without a recorded approval")
            tool, key = key_of[cid]
            contract = catalog.get(tool)
            if contract is not None and contract.guarded_once:
                live_by_key.setdefault((tool, key), set()).add(cid)
        if dst == "running_dry_run" and locked and ln["detail"].get("lock_mode") == "mock_only":
            problems.append(f"I2: {cid} ran DRY_RUN while locked under mock_only")
    for key, calls in live_by_key.items():
        if len(calls) > 1:
            problems.append(f"I4: irreversible key {key} started LIVE by {sorted(calls)}")
    for cid, st in state.items():
        if st not in {s.value for s in FINAL}:
            problems.append(f"I9: {cid} ended in {st}")

    # I7: only LIVE reversible successes, each at most once, reverse completion order per plan.
    end_of = {}
    for e in execs:
        if e["outcome"] == "succeeded":
            end_of[e["call_id"]] = e["end"]
    seen: set[str] = set()
    by_plan: dict[str, list[str]] = {}
    for r in rollbacks:
        if r["outcome"] not in ("rolled_back", "rollback_failed"):
            continue
        cid = r["call_id"]
        if cid in seen:
            problems.append(f"I7: {cid} rolled back twice")
        seen.add(cid)
        row = next(c for c in summary["calls"] if c["call_id"] == cid)
        contract = catalog.get(row["tool"])
        if row["mode"] != "live" or contract is None or not contract.reversible:
            problems.append(f"I7: {cid} rolled back but it was not a LIVE reversible success")
        by_plan.setdefault(r["plan_id"], []).append(cid)
    for plan, cids in by_plan.items():
        ends = [end_of.get(c, 0) for c in cids]
        if ends != sorted(ends, reverse=True):
            problems.append(f"I7: plan {plan} rolled back out of reverse completion order")

    # I13: rates in [0, 1], drift in [0, 1], health in [0, 100].
    for doc in (summary["metrics"], health["metrics"]):
        for k in RATES:
            v = doc.get(k)
            if v is not None and not 0 <= v <= 1:
                problems.append(f"I13: {k} = {v}")
        h = doc.get("system_health_score")
        if h is not None and not 0 <= h <= 100:
            problems.append(f"I13: health {h}")
    return problems
