"""auto_tune (I14): thresholds learned from earlier runs are applied between runs, never
below the floor, and every change is audited in the hash-chained log; without
auto_tune nothing changes."""

from __future__ import annotations

import json
from pathlib import Path

from interlock.adapters import Runtime, ToolRegistry
from interlock.core.convert import structure_catalog, structure_policy
from interlock.core.model import Risk

CATALOG = {"schema_version": 1, "tools": [
    {"name": "ping", "risk": "low", "idempotent": True, "supports_dry_run": True,
     "input_schema": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}}]}


def _plans(n: int) -> dict:
    return {"schema_version": 1, "plans": [
        {"plan_id": f"p{i}", "agent_id": "a", "steps": [
            {"id": "s", "tool": "ping", "confidence": 0.9, "args": {"n": i}}]} for i in range(n)]}


def _runtime(tmp: Path, auto_tune: bool) -> Runtime:
    reg = ToolRegistry()
    reg.register_dry_run("ping", lambda n: {"n": n})
    catalog = structure_catalog(CATALOG, "catalog")
    policy = structure_policy({"schema_version": 1, "max_concurrency": 4,
                               "learning": {"auto_tune": auto_tune}}, "policy", catalog)
    return Runtime.from_catalog(catalog, policy=policy, registry=reg, entry_points=False,
                                state_dir=tmp / "state")


def test_auto_tune_applies_learned_thresholds_between_runs_and_audits_them(tmp_path: Path) -> None:
    rt = _runtime(tmp_path, auto_tune=True)
    first = rt.run(_plans(120), out=tmp_path / "r1")  # 120 real (dry-run) successes at 0.9
    assert first.exit_code == 0 and not first.orchestrator.policy_changes
    second = rt.run(_plans(3), out=tmp_path / "r2")
    changes = second.orchestrator.policy_changes
    # low learned 0.9; medium is raised with it so thresholds never fall as risk rises (I3)
    assert [(c["risk"], c["to"]) for c in changes] == [("low", 0.9), ("medium", 0.9)]
    assert second.orchestrator.policy.thresholds[Risk.LOW].live == 0.9
    assert second.orchestrator.policy.thresholds[Risk.LOW].live >= 0.3  # the floor
    lines = [json.loads(x) for x in (tmp_path / "r2/execution_state_transitions.jsonl").read_text().splitlines()]
    audit = [ln for ln in lines if ln["machine"] == "policy"]
    assert [(a["from"], a["to"]) for a in audit] == [("low.live=0.5", "low.live=0.9"),
                                                     ("medium.live=0.75", "medium.live=0.9")]
    summary = json.loads((tmp_path / "r2/orchestration_summary.json").read_text())
    assert summary["policy"]["thresholds"]["low"]["live"] == 0.9
    from interlock.adapters.cli import main

    assert main(["verify-log", str(tmp_path / "r2")]) == 0
    assert main(["replay", str(tmp_path / "r2")]) == 0


def test_without_auto_tune_the_policy_never_changes(tmp_path: Path) -> None:
    rt = _runtime(tmp_path, auto_tune=False)
    rt.run(_plans(120))
    second = rt.run(_plans(3))
    assert second.orchestrator.policy_changes == []
    assert second.orchestrator.policy.thresholds[Risk.LOW].live == 0.5
