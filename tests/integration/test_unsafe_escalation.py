"""Confident calls that keep failing: drift passes 0.4, the system locks itself (I2).

SPEC section 7: `unsafe_escalation` (|mean confidence - observed success| >
drift_gt over the window, never on fewer than min_samples) locks the system
through the lock machine, so no later call runs LIVE.
"""

from __future__ import annotations

import json
from pathlib import Path

from interlock.adapters import Runtime, ToolRegistry
from interlock.core.convert import structure_catalog, structure_policy

CATALOG = {"schema_version": 1, "tools": [
    {"name": "deploy", "risk": "low", "idempotent": False, "supports_dry_run": True,
     "input_schema": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}}]}
POLICY = {"schema_version": 1, "allow_live": True, "max_concurrency": 1,
          "anomalies": {"window": 20, "min_samples": 10}}


def test_drift_locks_the_system_and_nothing_goes_live_after(tmp_path: Path) -> None:
    calls: list[int] = []
    reg = ToolRegistry()

    @reg.tool("deploy")
    def deploy(n: int) -> dict:
        calls.append(n)
        raise RuntimeError("the agent was confidently wrong")

    catalog = structure_catalog(CATALOG, "catalog")
    plans = {"schema_version": 1, "plans": [
        {"plan_id": f"p{i}", "agent_id": "overconfident", "on_failure": "keep",
         "steps": [{"id": "deploy", "tool": "deploy", "confidence": 0.97, "args": {"n": i}}]}
        for i in range(25)]}
    rt = Runtime.from_catalog(catalog, policy=structure_policy(POLICY, "policy", catalog), registry=reg,
                              entry_points=False, state_dir=tmp_path / "state")
    result = rt.run(plans, out=tmp_path / "out")

    orch = result.orchestrator
    kinds = [a.kind for a in orch.anomalies]
    assert "unsafe_escalation" in kinds
    drift = next(a for a in orch.anomalies if a.kind == "unsafe_escalation")
    assert drift.value > 0.4 and drift.samples >= 10
    assert orch.locked and orch.lock_by == "monitor"
    lines = [json.loads(x) for x in (tmp_path / "out/execution_state_transitions.jsonl").read_text().splitlines()]
    lock_seq = next(ln["seq"] for ln in lines if ln["machine"] == "system" and ln["to"] == "locked")
    live = [ln["seq"] for ln in lines if ln["to"] == "running_live"]
    assert live and max(live) < lock_seq  # I2: after the lock, nothing enters running_live
    after = [ln for ln in lines if ln["seq"] > lock_seq and ln["trigger"] == "dispatch"]
    assert after and all(ln["to"] == "running_mock" and ln["rule"] == "system_locked" for ln in after)
    assert len(calls) == len(live) == 10  # the LIVE callable stopped being called at the lock
    summary = json.loads((tmp_path / "out/orchestration_summary.json").read_text())
    assert summary["lock"]["state"] == "locked" and "unsafe_escalation" in summary["lock"]["reason"]
    assert any(a["kind"] == "unsafe_escalation" for a in summary["anomalies"])
    # The lock is durable: the next run starts locked, until an operator unlocks.
    from interlock.adapters.store import SQLiteStore

    with SQLiteStore.open(tmp_path / "state") as store:
        assert store.system_state()["state"] == "locked"
