"""Records the orchestrator appends as it goes: the raw material of the seven outputs.

They are plain values; ``interlock.core.convert`` unstructures them, adapters
write them. Field names here are the field names in the output files.
"""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class TransitionRecord:
    """One state change of one call (``machine="call"``) or of the system lock
    (``machine="system"``, ``call_id=None``). Hashes are added by the audit chain."""

    seq: int
    time: float
    machine: str
    call_id: str | None
    plan_id: str | None
    agent_id: str | None
    src: str
    trigger: str
    dst: str
    rule: str
    detail: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class ExecutionRecord:
    """One execution attempt of a call (one line of tool_execution_log.jsonl)."""

    call_id: str
    plan_id: str
    agent_id: str
    tool: str
    mode: str
    risk: str
    confidence: float
    attempt: int
    start: float
    end: float
    duration_ms: float
    outcome: str  # succeeded | failed | lost
    error: str | None
    result: Any
    decision: dict[str, Any]
    idempotency_key: str
    phase21_plan_id: str | None = None
    phase22_validation_id: str | None = None


@attrs.frozen
class ConflictRecord:
    """One conflict group: one record per (resource, type) listing every call."""

    id: str
    type: str
    calls: tuple[str, ...]
    resource: str
    strategy: str
    outcome: str
    detail: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class RollbackEvent:
    call_id: str
    plan_id: str
    tool: str
    args: dict[str, Any]
    start: float
    end: float | None
    outcome: str  # rolled_back | rollback_failed | skipped_irreversible
    error: str | None
    trigger_call: str  # the failed call that started the saga


@attrs.frozen
class AnomalyRecord:
    kind: str
    severity: int
    action: str
    value: float
    threshold: float
    time: float
    samples: int
    message: str
