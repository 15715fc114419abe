"""Rebuilding a run from the durable store: ``resume``, ``resolve`` and ``export``.

A run's inputs (catalog, plans, effective policy, the ledger snapshot and the
lock state it started with) are kept in its ``runs`` row; its input events are
kept with every step. Replaying the events through a fresh orchestrator
rebuilds it exactly (I12); the regenerated transition log must equal the
stored one, record for record and hash for hash, or nothing continues.
"""

from __future__ import annotations

import os
from typing import Any

import attrs

from interlock.adapters.cli import EnvironmentProblem, UsageProblem
from interlock.core.audit import GENESIS, link_hash, transition_line
from interlock.core.convert import structure, unstructure
from interlock.core.model import Catalog, PlanSet, Policy
from interlock.core.orchestrator import Orchestrator


def run_meta(*, catalog: Catalog, plans: PlanSet, policy: Policy, ledger: dict, locked: bool,
             lock_reason: str, policy_changes: list, inputs: dict, tools: list[str],
             approvals: Any, out: str | None, started: float) -> dict[str, Any]:
    """What ``resume`` needs to rebuild the run without the original files."""
    return {
        "inputs": inputs,
        "documents": {"catalog": unstructure(catalog), "plans": unstructure(plans),
                      "policy": unstructure(policy)},
        "ledger": [[tool, key, holder] for (tool, key), holder in sorted(ledger.items())],
        "locked": locked,
        "lock_reason": lock_reason,
        "policy_changes": policy_changes,
        "tools": list(tools),
        "approvals": str(approvals) if isinstance(approvals, (str, os.PathLike)) else None,
        "out": out,
        "started": started,
    }


@attrs.define
class Rebuilt:
    orchestrator: Orchestrator
    plans: PlanSet
    meta: dict[str, Any]
    lines: list[dict[str, Any]]  # the stored transition lines (chained)
    events: int


def rebuild(store: Any, run_id: str) -> Rebuilt:
    """The orchestrator of a stored run, as it was after its last committed step."""
    run = store.get_run(run_id)
    if run is None:
        known = ", ".join(r["run_id"] for r in store.list_runs()[-5:]) or "none"
        raise UsageProblem(f"{store.path}: no run {run_id!r} in this state directory (latest: {known})")
    meta = run["meta"]
    if "documents" not in meta:
        raise UsageProblem(f"run {run_id!r} is not a run of plans (it cannot be resumed)")
    docs = meta["documents"]
    catalog = structure(docs["catalog"], Catalog, f"store:{run_id}:catalog")
    plans = structure(docs["plans"], PlanSet, f"store:{run_id}:plans")
    policy = structure(docs["policy"], Policy, f"store:{run_id}:policy")
    ledger = {(t, k): h for t, k, h in meta.get("ledger", [])}
    orch = Orchestrator(catalog, policy, run_id=run_id, ledger=ledger, locked=meta.get("locked", False),
                        lock_reason=meta.get("lock_reason", ""),
                        policy_changes=meta.get("policy_changes", []))
    events = store.records(run_id, "event")
    orch.replay_events(plans, events)
    stored = store.transitions(run_id)
    check_replay(orch, stored, run_id)
    return Rebuilt(orch, plans, meta, stored, len(events))


def check_replay(orch: Orchestrator, stored: list[dict[str, Any]], run_id: str) -> None:
    """The log the events rebuild must be the log the store holds (I10)."""
    prev = GENESIS
    if len(orch.transitions) != len(stored):
        raise EnvironmentProblem(
            f"run {run_id}: the stored events rebuild {len(orch.transitions)} transitions but the log "
            f"holds {len(stored)}; the store is inconsistent (run `interlock verify-log`)")
    for rec, line in zip(orch.transitions, stored):
        mine = transition_line(rec, run_id)
        mine["prev_hash"] = prev
        mine["hash"] = link_hash(prev, mine)
        if mine["hash"] != line.get("hash"):
            raise EnvironmentProblem(
                f"run {run_id}: transition {rec.seq} rebuilt from the events differs from the stored "
                "log; the store was altered (run `interlock verify-log`)")
        prev = mine["hash"]
