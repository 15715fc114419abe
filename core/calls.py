"""Resolved calls: what plan intake produces and the orchestrator schedules.

``interlock.core.intake.intake()`` turns a PlanSet (already load-validated)
into ``Call`` values plus the plan problems and conflicts found before
anything runs. Calls are listed in submission order (plans in file order,
steps in plan order); ``seq`` is that position.
"""

from __future__ import annotations

from typing import Any

import attrs

from interlock.core.model import OnFailure, ToolContract


@attrs.frozen
class Call:
    call_id: str  # "plan_id/step_id" (a duplicate step id gets "#2", "#3"...)
    seq: int  # submission order
    plan_id: str
    step_id: str
    agent_id: str
    priority: int
    tool: str
    contract: ToolContract
    args: dict[str, Any]
    confidence: float
    deps: tuple[str, ...]  # call ids it must wait for, which must succeed (I5)
    reads: tuple[str, ...]  # expanded resources
    writes: tuple[str, ...]
    idempotency_key: str  # given, or sha256(tool + canonical args)
    on_failure: OnFailure = OnFailure.ROLLBACK
    phase21_plan_id: str | None = None
    phase22_validation_id: str | None = None


@attrs.frozen
class Escalation:
    """Calls that wait for the approval gate because of a conflict
    (strategy ``escalate``). Granted: they proceed (serialized by ``order_edges``
    where they share a resource). Denied or timed out: ``cancel`` are cancelled."""

    conflict_id: str
    call_ids: tuple[str, ...]
    reason: str
    drop_deps: tuple[tuple[str, str], ...] = ()  # (call, dep) to drop when granted


@attrs.frozen
class IntakeResult:
    calls: tuple[Call, ...]
    #: call id -> reason; these calls go proposed -> rejected (plan problems).
    rejected: dict[str, str]
    #: call id -> reason; accepted, then cancelled before running (conflict lost,
    #: deduplicated, dependency on a rejected call without escalation).
    cancelled: dict[str, str]
    #: soft ordering edges (before, after) from `serialize`: `after` waits until
    #: `before` is settled (any final state); never cancels on failure.
    order_edges: tuple[tuple[str, str], ...]
    escalations: tuple[Escalation, ...]
    conflicts: tuple[Any, ...]  # ConflictRecord, in deterministic order
