"""Hand-built run material for the audit/output/replay tests: one small, consistent run."""

from __future__ import annotations

from typing import Any

from interlock.core.records import (
    AnomalyRecord,
    ConflictRecord,
    ExecutionRecord,
    RollbackEvent,
    TransitionRecord,
)

RUN_ID = "run-0001"
HASH0 = "ab" * 32

#: (call_id, from, trigger, to, rule) in log order; None call_id = the system lock machine.
STEPS: list[tuple[str | None, str, str, str, str]] = [
    ("p1/a", "proposed", "accept", "waiting", "intake.accepted"),
    ("p1/b", "proposed", "accept", "waiting", "intake.accepted"),
    ("p2/c", "proposed", "reject", "rejected", "plan.missing_dependency"),
    ("p1/a", "waiting", "release", "ready", "deps.succeeded"),
    ("p1/a", "ready", "dispatch", "running_live", "threshold.low.live"),
    ("p1/a", "running_live", "succeed", "succeeded", "execution.succeeded"),
    ("p1/b", "waiting", "release", "ready", "deps.succeeded"),
    ("p1/b", "ready", "dispatch", "running_dry_run", "threshold.medium.dry_run"),
    ("p1/b", "running_dry_run", "fail", "failed", "execution.failed"),
    ("p1/a", "succeeded", "rollback", "rolling_back", "saga.rollback"),
    ("p1/a", "rolling_back", "rollback_ok", "rolled_back", "saga.rolled_back"),
    (None, "unlocked", "lock", "locked", "system.lock"),
]

FINAL = {"p1/a": "rolled_back", "p1/b": "failed", "p2/c": "rejected"}


def transitions() -> list[TransitionRecord]:
    out = []
    for seq, (call, src, trigger, dst, rule) in enumerate(STEPS):
        plan = call.split("/")[0] if call else None
        out.append(TransitionRecord(
            seq=seq, time=100.0 + seq * 0.25, machine="call" if call else "system", call_id=call,
            plan_id=plan, agent_id="agent-1" if call else None, src=src, trigger=trigger, dst=dst,
            rule=rule, detail={"why": rule, "n": [seq]} if call else {"reason": "drift", "by": "monitor"},
        ))
    return out


def metrics(**override: Any) -> dict[str, Any]:
    # What the sample's own logs give (`interlock replay` recomputes these):
    # 1 of 2 succeeded; both calls are in the conflict; |mean(0.9, 0.5) - 0.5| = 0.2;
    # latencies 10 and 15 ms; health = (0.35*0.5 + 0.15*0.5 + 0.10*0 + 0.25*0.8
    # + 0.10*1000/1012.5) / 0.95 (approval unknown: its weight left out) = 57.765.
    m = {
        "tool_success_rate": 0.5, "rollback_frequency": 0.5, "conflict_rate": 1.0,
        "live_execution_ratio": 0.5, "confidence_drift": 0.2, "approval_rate": None,
        "system_health_score": 57.76478232618583,
        "execution_latency_ms": {"mean": 12.5, "p95": 15.0},
        "samples": 2,
        "null_reasons": {"approval_rate": "no approval was requested"},
    }
    m.update(override)
    return m


def anomaly() -> AnomalyRecord:
    return AnomalyRecord(kind="unsafe_escalation", severity=7, action="lock", value=0.45,
                         threshold=0.4, time=102.5, samples=12, message="confidence drift 0.45 > 0.4")


def anomaly_dict() -> dict[str, Any]:
    a = anomaly()
    return {f: getattr(a, f) for f in ("kind", "severity", "action", "value", "threshold", "time",
                                       "samples", "message")}


def lock() -> dict[str, Any]:
    return {"state": "locked", "reason": "drift", "by": "monitor"}


def summary() -> dict[str, Any]:
    """orchestration_summary.json without ``audit`` (the writer adds it)."""
    def call(cid: str, tool: str, risk: str, conf: float, mode: str | None, attempts: int,
             rule: str, reason: str | None) -> dict[str, Any]:
        plan, step = cid.split("/")
        return {"call_id": cid, "plan_id": plan, "step_id": step, "agent_id": "agent-1", "tool": tool,
                "risk": risk, "confidence": conf, "final_state": FINAL[cid], "mode": mode,
                "attempts": attempts, "rule": rule, "reason": reason,
                "idempotency_key": f"key-{step}", "approved_by": None}

    return {
        "schema_version": 1, "run_id": RUN_ID, "started_at": 100.0, "finished_at": 103.0,
        "exit_code": 1,
        "inputs": {"catalog": {"path": "catalog.yaml", "sha256": HASH0},
                   "plans": {"path": "plans.yaml", "sha256": HASH0},
                   "policy": {"path": None, "sha256": None}},
        "plans": [
            {"plan_id": "p1", "agent_id": "agent-1", "priority": 5, "phase21_plan_id": "p21-1",
             "phase22_validation_id": None, "status": "failed", "calls": ["p1/a", "p1/b"]},
            {"plan_id": "p2", "agent_id": "agent-1", "priority": 0, "phase21_plan_id": None,
             "phase22_validation_id": None, "status": "rejected", "calls": ["p2/c"]},
        ],
        "calls": [
            call("p1/a", "fs.write_file", "low", 0.9, "live", 1, "saga.rolled_back", None),
            call("p1/b", "k8s.deploy", "medium", 0.5, "dry_run", 1, "execution.failed", "boom"),
            call("p2/c", "ci.build", "low", 0.7, None, 0, "plan.missing_dependency",
                 "p2/c: dependency p2/x does not exist"),
        ],
        "counts": {"by_state": {"failed": 1, "rejected": 1, "rolled_back": 1},
                   "by_mode": {"dry_run": 1, "live": 1}},
        "conflicts": 1, "rollbacks": 1, "metrics": metrics(), "anomalies": [anomaly_dict()],
        "lock": lock(), "policy": {"schema_version": 1},
    }


def health() -> dict[str, Any]:
    return {
        "schema_version": 1, "run_id": RUN_ID, "time": 103.0, "metrics": metrics(),
        "health_score": 71.5, "anomalies": [anomaly_dict()], "lock": lock(), "window": 50,
        "history": [{"time": 101.0, "health_score": None}, {"time": 103.0, "health_score": 71.5}],
    }


def executions() -> list[ExecutionRecord]:
    return [
        ExecutionRecord(call_id="p1/a", plan_id="p1", agent_id="agent-1", tool="fs.write_file",
                        mode="live", risk="low", confidence=0.9, attempt=1, start=101.0, end=101.01,
                        duration_ms=10.0, outcome="succeeded", error=None, result={"backup": "b1"},
                        decision={"rule": "threshold.low.live", "inputs": {"risk": "low"}},
                        idempotency_key="key-a", phase21_plan_id="p21-1"),
        ExecutionRecord(call_id="p1/b", plan_id="p1", agent_id="agent-1", tool="k8s.deploy",
                        mode="dry_run", risk="medium", confidence=0.5, attempt=1, start=101.5,
                        end=101.515, duration_ms=15.0, outcome="failed", error="boom", result=None,
                        decision={"rule": "threshold.medium.dry_run"}, idempotency_key="key-b"),
    ]


def conflicts() -> list[ConflictRecord]:
    return [ConflictRecord(id="c1", type="write_write", calls=("p1/a", "p1/b"), resource="file:/x",
                           strategy="serialize", outcome="ordered p1/a before p1/b",
                           detail={"edges": [["p1/a", "p1/b"]]})]


def rollbacks() -> list[RollbackEvent]:
    return [RollbackEvent(call_id="p1/a", plan_id="p1", tool="fs.restore_file",
                          args={"path": "/x", "backup": "b1"}, start=102.0, end=102.1,
                          outcome="rolled_back", error=None, trigger_call="p1/b")]


def signals() -> list[dict[str, Any]]:
    return [
        {"signal": "TOOL_RELIABILITY", "time": 103.0, "tool": "k8s.deploy", "success_rate": 0.0,
         "latency_ms_mean": 15.0, "rollback_rate": 0.0, "samples": 1},
        {"signal": "APPROVAL_MISMATCH", "time": 103.0, "call_id": "p1/b", "tool": "k8s.deploy",
         "kind": "high_confidence_failure", "confidence": 0.5, "outcome": "failed", "detail": "boom"},
    ]
