"""The summary and health documents of a run, built from the orchestrator's state.

Pure: the runner passes in the times and input digests it measured. Every
count here is recomputable from the logs (I10): ``interlock replay`` checks it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from interlock.core.controller.states import State
from interlock.core.convert import unstructure
from interlock.core.orchestrator import Orchestrator

SCHEMA_VERSION = 1


def plan_status(states: list[State]) -> str:
    if all(s is State.REJECTED for s in states) and states:
        return "rejected"
    if all(s is State.SUCCEEDED for s in states):
        return "succeeded"
    if any(s in (State.FAILED, State.OUTCOME_UNKNOWN, State.ROLLED_BACK, State.ROLLBACK_FAILED)
           for s in states):
        return "failed"
    return "partial"


def call_rows(orch: Orchestrator) -> list[dict[str, Any]]:
    rows = []
    for cid in orch.order:
        rec = orch.calls[cid]
        c = rec.call
        rows.append({
            "call_id": cid,
            "plan_id": c.plan_id,
            "step_id": c.step_id,
            "agent_id": c.agent_id,
            "tool": c.tool,
            "risk": c.contract.risk.value,
            "confidence": c.confidence,
            "final_state": rec.state.value,
            "mode": rec.mode.label if rec.mode is not None else None,
            "attempts": rec.attempt,
            "rule": rec.mode_rule or rec.rule,
            "reason": rec.reason,
            "idempotency_key": c.idempotency_key,
            "approved_by": rec.approved_by,
        })
    return rows


def lock_doc(orch: Orchestrator) -> dict[str, Any]:
    return {"state": orch.system.value, "reason": orch.lock_reason or None, "by": orch.lock_by or None}


def build_summary(
    orch: Orchestrator,
    *,
    started_at: float,
    finished_at: float,
    inputs: dict[str, Any],
    plans: Any,
) -> dict[str, Any]:
    """``orchestration_summary.json`` (without ``audit``, which the writer adds)."""
    rows = call_rows(orch)
    by_plan: dict[str, list[State]] = {}
    for cid in orch.order:
        rec = orch.calls[cid]
        by_plan.setdefault(rec.call.plan_id, []).append(rec.state)
    ids_of: dict[str, list[str]] = {}
    for r in rows:
        ids_of.setdefault(r["plan_id"], []).append(r["call_id"])
    plan_docs = []
    for p in plans.plans:
        ids = ids_of.get(p.plan_id, [])
        plan_docs.append({
            "plan_id": p.plan_id,
            "agent_id": p.agent_id,
            "priority": p.priority,
            "phase21_plan_id": p.phase21_plan_id,
            "phase22_validation_id": p.phase22_validation_id,
            "status": plan_status(by_plan.get(p.plan_id, [])),
            "calls": ids,
        })
    by_state = Counter(r["final_state"] for r in rows)
    by_mode = Counter(r["mode"] for r in rows if r["mode"] is not None)
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": orch.run_id,
        "started_at": started_at,
        "finished_at": finished_at,
        "exit_code": orch.exit_code(),
        "inputs": inputs,
        "plans": plan_docs,
        "calls": rows,
        "counts": {"by_state": dict(sorted(by_state.items())), "by_mode": dict(sorted(by_mode.items()))},
        "conflicts": len(orch.conflicts),
        "rollbacks": sum(1 for r in orch.rollbacks if r.outcome in ("rolled_back", "rollback_failed")),
        "metrics": orch.monitor.metrics(),
        "anomalies": [unstructure(a) for a in orch.anomalies],
        "lock": lock_doc(orch),
        # The effective policy (after --live and auto_tune): what `replay` needs to
        # recompute the metrics from the logs alone.
        "policy": unstructure(orch.policy),
    }


def build_health(orch: Orchestrator, *, time: float) -> dict[str, Any]:
    """``system_health.json``."""
    metrics = orch.monitor.metrics()
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": orch.run_id,
        "time": time,
        "metrics": metrics,
        "health_score": metrics.get("system_health_score"),
        "anomalies": [unstructure(a) for a in orch.anomalies],
        "lock": lock_doc(orch),
        "window": orch.policy.anomalies.window,
        "history": orch.monitor.history(),
    }
