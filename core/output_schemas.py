"""JSON Schemas (draft 2020-12) of the seven output files (SPEC section 8).

Built from the controller definition and the domain enums, so a new state or
conflict type reaches the schemas by itself; ``specs/schemas/*.schema.json``
are these dicts rendered by ``render_output_schemas`` and a test fails when
the committed files drift. A JSONL file's schema describes one line.

Ranges are part of the contract (I13): rates and drift in [0, 1], health in
[0, 100]; ``additionalProperties: false`` wherever the format is fixed.
"""

from __future__ import annotations

import json
from typing import Any

from interlock.core.controller.states import (
    SYSTEM_TRANSITIONS,
    TRIGGERS,
    State,
    SystemState,
)
from interlock.core.feedback import SIGNAL_SCHEMAS, SIGNAL_TYPES
from interlock.core.model import ConflictType, Mode, Risk, Strategy
from interlock.core.monitor import ANOMALY_KINDS
from interlock.core.monitor import METRIC_NAMES as SCALAR_METRICS

DRAFT = "https://json-schema.org/draft/2020-12/schema"

#: Output file name -> schema file name under specs/schemas/.
OUTPUT_FILES: dict[str, str] = {
    "orchestration_summary.json": "orchestration_summary.schema.json",
    "tool_execution_log.jsonl": "tool_execution_log.schema.json",
    "execution_state_transitions.jsonl": "execution_state_transitions.schema.json",
    "tool_conflicts.json": "tool_conflicts.schema.json",
    "rollback_events.jsonl": "rollback_events.schema.json",
    "learning_signals.jsonl": "learning_signals.schema.json",
    "system_health.json": "system_health.schema.json",
}

#: Metrics that are rates (or drift) in [0, 1]; the health score is in [0, 100].
RATE_METRICS: tuple[str, ...] = tuple(m for m in SCALAR_METRICS if m != "system_health_score")
#: Every metric name ``null_reasons`` may explain.
METRIC_NAMES: tuple[str, ...] = SCALAR_METRICS + ("execution_latency_ms",)
PLAN_STATUSES: tuple[str, ...] = ("succeeded", "failed", "partial", "rejected")
EXECUTION_OUTCOMES: tuple[str, ...] = ("succeeded", "failed", "lost")
ROLLBACK_OUTCOMES: tuple[str, ...] = ("rolled_back", "rollback_failed", "skipped_irreversible")

_HASH = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_STR = {"type": "string"}
_ID = {"type": "string", "minLength": 1}
_OPT_STR = {"type": ["string", "null"]}
_NUM = {"type": "number"}
_COUNT = {"type": "integer", "minimum": 0}
_RATE = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
_HEALTH = {"type": ["number", "null"], "minimum": 0, "maximum": 100}
_CONFIDENCE = {"type": "number", "minimum": 0, "maximum": 1}
_MODES = [m.label for m in Mode]
_RISKS = [r.value for r in Risk]
_STATES = [s.value for s in State]
_SYSTEM_STATES = [s.value for s in SystemState]
_SYSTEM_TRIGGERS = list(dict.fromkeys(t["trigger"] for t in SYSTEM_TRANSITIONS))


def _obj(props: dict[str, Any], *, required: list[str] | None = None, closed: bool = True) -> dict[str, Any]:
    """An object schema; every property is required unless ``required`` says otherwise."""
    out: dict[str, Any] = {
        "type": "object",
        "properties": props,
        "required": sorted(props) if required is None else sorted(required),
    }
    if closed:
        out["additionalProperties"] = False
    return out


def _document(name: str, title: str, props: dict[str, Any], defs: dict[str, Any] | None = None,
              **extra: Any) -> dict[str, Any]:
    schema = {
        "$schema": DRAFT,
        "$id": f"urn:interlock:output:{name}:v1",
        "title": title,
        **_obj({"schema_version": {"const": 1}, "run_id": _ID, **props}),
        **extra,
    }
    if defs:
        schema["$defs"] = defs
    return schema


def _metrics() -> dict[str, Any]:
    props: dict[str, Any] = {name: _RATE for name in RATE_METRICS}
    props["system_health_score"] = _HEALTH
    props["execution_latency_ms"] = _obj({
        "mean": {"type": ["number", "null"], "minimum": 0},
        "p95": {"type": ["number", "null"], "minimum": 0},
    })
    props["samples"] = _COUNT
    props["null_reasons"] = {
        "type": "object",
        "description": "why a metric is null (too few samples, nothing requested...)",
        "propertyNames": {"enum": list(METRIC_NAMES)},
        "additionalProperties": _STR,
    }
    return _obj(props)


def _anomaly() -> dict[str, Any]:
    return _obj({
        "kind": {"enum": list(ANOMALY_KINDS)},
        "severity": {"type": "integer", "minimum": 0, "maximum": 10},
        "action": _STR,
        "value": _NUM,
        "threshold": _NUM,
        "time": _NUM,
        "samples": _COUNT,
        "message": _STR,
    })


def _lock() -> dict[str, Any]:
    return _obj({"state": {"enum": _SYSTEM_STATES}, "reason": _OPT_STR, "by": _OPT_STR})


def _shared_defs() -> dict[str, Any]:
    return {"metrics": _metrics(), "anomaly": _anomaly(), "lock": _lock()}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/$defs/{name}"}


def _counts_of(names: list[str]) -> dict[str, Any]:
    return {"type": "object", "propertyNames": {"enum": names}, "additionalProperties": _COUNT}


def summary_schema() -> dict[str, Any]:
    digest = _obj({"path": _STR, "sha256": _HASH})
    policy_digest = _obj({"path": _OPT_STR, "sha256": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"}})
    plan = _obj({
        "plan_id": _ID, "agent_id": _ID, "priority": {"type": "integer"},
        "phase21_plan_id": _OPT_STR, "phase22_validation_id": _OPT_STR,
        "status": {"enum": list(PLAN_STATUSES)},
        "calls": {"type": "array", "items": _ID},
    })
    call = _obj({
        "call_id": _ID, "plan_id": _ID, "step_id": _ID, "agent_id": _ID, "tool": _ID,
        "risk": {"enum": _RISKS}, "confidence": _CONFIDENCE,
        "final_state": {"enum": _STATES},
        "mode": {"enum": _MODES + [None]},
        "attempts": _COUNT, "rule": _STR, "reason": _OPT_STR,
        "idempotency_key": _STR, "approved_by": _OPT_STR,
    })
    return _document(
        "orchestration_summary", "interlock orchestration_summary.json",
        {
            "started_at": _NUM,
            "finished_at": _NUM,
            "exit_code": {"enum": [0, 1, 2, 3]},
            "inputs": _obj({
                "catalog": digest, "plans": digest,
                "policy": {**policy_digest, "description": "path and sha256 are null when the defaults were used"},
            }),
            "plans": {"type": "array", "items": plan},
            "calls": {"type": "array", "items": call},
            "counts": _obj({"by_state": _counts_of(_STATES), "by_mode": _counts_of(_MODES)}),
            "conflicts": _COUNT,
            "rollbacks": _COUNT,
            "metrics": _ref("metrics"),
            "anomalies": {"type": "array", "items": _ref("anomaly")},
            "lock": _ref("lock"),
            "policy": {"type": "object", "description": (
                "the effective policy of the run (after --live and auto_tune), in the policy "
                "file format of specs/schemas/policy.schema.json; replay recomputes the metrics with it")},
            "audit": _obj({
                "transitions": _COUNT,
                "head_hash": {**_HASH, "description": "hash of the last transition; GENESIS (64 zeros) when none"},
            }),
        },
        _shared_defs(),
    )


def health_schema() -> dict[str, Any]:
    return _document(
        "system_health", "interlock system_health.json",
        {
            "time": _NUM,
            "metrics": _ref("metrics"),
            "health_score": _HEALTH,
            "anomalies": {"type": "array", "items": _ref("anomaly")},
            "lock": _ref("lock"),
            "window": {"type": "integer", "minimum": 1},
            "history": {"type": "array", "items": _obj({"time": _NUM, "health_score": _HEALTH})},
        },
        _shared_defs(),
    )


def transitions_schema() -> dict[str, Any]:
    """One line; ``from``/``trigger``/``to`` range over the machine named in ``machine``."""
    call_edge = {
        "properties": {
            "from": {"enum": _STATES}, "to": {"enum": _STATES}, "trigger": {"enum": list(TRIGGERS)},
            "call_id": _ID,
        },
    }
    system_edge = {
        "properties": {
            "from": {"enum": _SYSTEM_STATES}, "to": {"enum": _SYSTEM_STATES},
            "trigger": {"enum": _SYSTEM_TRIGGERS}, "call_id": {"type": "null"},
        },
    }
    # auto_tune (I14): a change of a live threshold, audited in the same chain.
    policy_edge = {
        "properties": {
            "from": {"type": "string", "pattern": "^(low|medium|high)\\.live="},
            "to": {"type": "string", "pattern": "^(low|medium|high)\\.live="},
            "trigger": {"const": "tune"}, "call_id": {"type": "null"},
            "rule": {"const": "learning.auto_tune"},
        },
    }
    return _document(
        "execution_state_transitions", "interlock execution_state_transitions.jsonl (one line)",
        {
            "seq": _COUNT, "time": _NUM, "machine": {"enum": ["call", "system", "policy"]},
            "call_id": _OPT_STR, "plan_id": _OPT_STR, "agent_id": _OPT_STR,
            "from": _STR, "trigger": _STR, "to": _STR, "rule": _STR,
            "detail": {"type": "object"},
            "prev_hash": _HASH, "hash": _HASH,
        },
        allOf=[
            {"if": {"properties": {"machine": {"const": "call"}}}, "then": call_edge},
            {"if": {"properties": {"machine": {"const": "system"}}}, "then": system_edge},
            {"if": {"properties": {"machine": {"const": "policy"}}}, "then": policy_edge},
        ],
    )


def execution_schema() -> dict[str, Any]:
    return _document(
        "tool_execution_log", "interlock tool_execution_log.jsonl (one line per execution attempt)",
        {
            "call_id": _ID, "plan_id": _ID, "agent_id": _ID, "tool": _ID,
            "mode": {"enum": _MODES}, "risk": {"enum": _RISKS}, "confidence": _CONFIDENCE,
            "attempt": {"type": "integer", "minimum": 1},
            "start": _NUM, "end": _NUM, "duration_ms": {"type": "number", "minimum": 0},
            "outcome": {"enum": list(EXECUTION_OUTCOMES)},
            "error": _OPT_STR,
            "result": {"description": "the tool's JSON result (null on failure)"},
            "decision": {"type": "object", "description": "decision provenance: rule, inputs, approver"},
            "idempotency_key": _STR,
            "phase21_plan_id": _OPT_STR, "phase22_validation_id": _OPT_STR,
        },
    )


def rollback_schema() -> dict[str, Any]:
    return _document(
        "rollback_events", "interlock rollback_events.jsonl (one line per rollback attempt)",
        {
            "call_id": _ID, "plan_id": _ID, "tool": _ID, "args": {"type": "object"},
            "start": _NUM, "end": {"type": ["number", "null"]},
            "outcome": {"enum": list(ROLLBACK_OUTCOMES)},
            "error": _OPT_STR, "trigger_call": _ID,
        },
    )


def conflicts_schema() -> dict[str, Any]:
    conflict = _obj({
        "id": _ID,
        "type": {"enum": [t.value for t in ConflictType]},
        "calls": {"type": "array", "items": _ID, "minItems": 1},
        "resource": _STR,
        "strategy": {"enum": [s.value for s in Strategy]},
        "outcome": _STR,
        "detail": {"type": "object"},
    })
    return _document(
        "tool_conflicts", "interlock tool_conflicts.json",
        {"conflicts": {"type": "array", "items": conflict}},
    )


def signals_schema() -> dict[str, Any]:
    """One line: ``oneOf`` the per-signal schemas of ``interlock.core.feedback``, picked by ``signal``."""
    # each a subschema here, not a resource of its own: without its "$schema"
    branches = [{k: v for k, v in SIGNAL_SCHEMAS[kind].items() if k != "$schema"} for kind in SIGNAL_TYPES]
    return {
        "$schema": DRAFT,
        "$id": "urn:interlock:output:learning_signals:v1",
        "title": "interlock learning_signals.jsonl (one line per learning signal)",
        "type": "object",
        "required": ["run_id", "schema_version", "signal", "time"],
        "properties": {
            "schema_version": {"const": 1}, "run_id": _ID, "time": _NUM,
            "signal": {"enum": list(SIGNAL_TYPES)},
        },
        "oneOf": branches,
    }


def output_schemas() -> dict[str, dict[str, Any]]:
    """Output file name (``orchestration_summary.json``...) -> its JSON Schema."""
    return {
        "orchestration_summary.json": summary_schema(),
        "tool_execution_log.jsonl": execution_schema(),
        "execution_state_transitions.jsonl": transitions_schema(),
        "tool_conflicts.json": conflicts_schema(),
        "rollback_events.jsonl": rollback_schema(),
        "learning_signals.jsonl": signals_schema(),
        "system_health.json": health_schema(),
    }


def render_output_schemas() -> dict[str, str]:
    """Schema file name (``orchestration_summary.schema.json``...) -> its committed text."""
    return {
        OUTPUT_FILES[name]: json.dumps(schema, indent=2, sort_keys=True) + "\n"
        for name, schema in output_schemas().items()
    }


__all__ = ["OUTPUT_FILES", "METRIC_NAMES", "RATE_METRICS", "output_schemas", "render_output_schemas"]
