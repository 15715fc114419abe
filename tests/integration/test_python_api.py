"""The Python API a service embeds: Runtime, @tool, gates; and the seed's Harness façade."""

from __future__ import annotations

import json
from pathlib import Path

from interlock.adapters import Harness, HarnessConfig, Runtime, ToolRegistry
from interlock.core.controller.states import State
from interlock.core.convert import structure_catalog

CATALOG = {
    "schema_version": 1,
    "tools": [
        {"name": "notes.add", "risk": "low", "idempotent": True, "supports_dry_run": True,
         "mock_result": {"added": False},
         "input_schema": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}},
        {"name": "db.drop", "risk": "high", "mock_result": {"dropped": False},
         "input_schema": {"type": "object", "properties": {}}},
    ],
}
PLANS = [{"plan_id": "p", "agent_id": "a", "steps": [
    {"id": "add", "tool": "notes.add", "confidence": 0.9, "args": {"text": "hi"}},
    {"id": "drop", "tool": "db.drop", "confidence": 0.99, "args": {}, "after": ["add"]}]}]


def _registry(calls: list) -> ToolRegistry:
    reg = ToolRegistry()

    @reg.tool("notes.add")
    def add(text: str) -> dict:
        calls.append(("add", text))
        return {"added": True}

    @reg.tool("db.drop")
    async def drop() -> dict:
        calls.append(("drop",))
        return {"dropped": True}

    return reg


def test_runtime_from_objects_runs_live_with_an_approval_callback(tmp_path: Path) -> None:
    calls: list = []
    catalog = structure_catalog(CATALOG, "catalog")
    from interlock.core.model import Policy

    asked = []
    rt = Runtime.from_catalog(catalog, policy=Policy(allow_live=True), registry=_registry(calls),
                              entry_points=False, state_dir=None,
                              approvals=lambda tool, confidence: asked.append(tool) or True)
    result = rt.run({"schema_version": 1, "plans": PLANS}, out=tmp_path / "out")
    assert result.exit_code == 0
    assert calls == [("add", "hi"), ("drop",)]
    assert asked == ["db.drop"]  # the seed's callback signature
    assert result.orchestrator.calls["p/drop"].approved_by
    assert json.loads((tmp_path / "out" / "orchestration_summary.json").read_text())["counts"]["by_mode"] == {"live": 2}


def test_default_runtime_denies_and_never_calls_live(tmp_path: Path) -> None:
    calls: list = []
    catalog = structure_catalog(CATALOG, "catalog")
    rt = Runtime.from_catalog(catalog, registry=_registry(calls), entry_points=False, state_dir=None)
    result = rt.run({"schema_version": 1, "plans": PLANS})
    assert calls == []  # allow_live is off by default: the LIVE callables are never called
    assert result.orchestrator.calls["p/add"].mode.label == "dry_run"
    assert result.orchestrator.calls["p/drop"].mode.label == "mock"


def test_seed_harness_quick_start(tmp_path: Path) -> None:
    config = HarnessConfig(catalog=structure_catalog(CATALOG, "catalog"), output_dir=tmp_path / "phase24",
                           dry_run_only=True, confidence_threshold_for_live=0.75)
    harness = Harness(config)
    harness.load_phase21_plans(PLANS)
    summary = harness.execute_orchestration_pipeline()
    assert summary["exit_code"] == 0
    assert {c["final_state"] for c in summary["calls"]} == {State.SUCCEEDED.value}
    assert all(c["mode"] != "live" for c in summary["calls"])
    health = harness.monitor.calculate_health_score()
    assert health is None or 0 <= health <= 100
    signals = harness.feedback_loop.export_signals()
    assert {s["signal"] for s in signals} >= {"TOOL_RELIABILITY", "EXECUTION_MODE_ANALYSIS"}
    assert (tmp_path / "phase24" / "orchestration_summary.json").exists()
