"""The feedback loop: learning signals built from a run's records (SPEC section 6).

Four signal types with stable field names, each described by a JSON Schema in
``SIGNAL_SCHEMAS`` (the writer adds ``schema_version`` and ``run_id``):

- ``TOOL_RELIABILITY`` per tool that ran for real;
- ``APPROVAL_MISMATCH`` per call whose confidence and outcome disagree with
  the policy or with a Phase-22 validation;
- ``EXECUTION_MODE_ANALYSIS`` per risk: modes, calls held back by each
  threshold, and the learning recommendation;
- ``CONFLICT_PATTERN``: frequent conflicting tool pairs and resources, and
  the ordering that would avoid them.

Inputs are the orchestrator's records or the dicts of their JSONL lines
(same field names), so ``interlock feedback`` can rebuild signals from a run
directory. docs/monitor.md ("Feedback signals") defines every field.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Iterable

import attrs
import jsonschema

from interlock.core.errors import Problem
from interlock.core.learning import recommend, samples_from_executions
from interlock.core.model import Policy, Risk

__all__ = [
    "SIGNAL_SCHEMAS", "SIGNAL_TYPES", "VALIDATION_SCHEMA", "build_signals", "correlate",
    "validation_problems",
]

SIGNAL_TYPES = ("TOOL_RELIABILITY", "APPROVAL_MISMATCH", "EXECUTION_MODE_ANALYSIS", "CONFLICT_PATTERN")
MISMATCH_KINDS = ("high_confidence_failure", "low_confidence_approved", "validation_contradicts")
#: How many tool pairs / resources a CONFLICT_PATTERN lists (most frequent first).
TOP_N = 10

_REAL_MODES = ("dry_run", "live")
_ROLLED = ("rolled_back", "rollback_failed")
#: A call's final state -> the outcome a validation is checked against. A
#: rolled-back call itself succeeded (its plan failed elsewhere); calls that
#: never ran (cancelled, rejected) or whose outcome is unknown are not judged.
_VALIDATED_OUTCOME = {
    "succeeded": True, "rolled_back": True, "rollback_failed": True, "failed": False,
}


# --------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------

_NUM = {"type": "number"}
_RATE = {"type": "number", "minimum": 0, "maximum": 1}
_RATE_OR_NULL = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
_COUNT = {"type": "integer", "minimum": 0}
_STR = {"type": "string"}


def _signal_schema(name: str, props: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": name,
        "description": description,
        "type": "object",
        "properties": {
            "signal": {"const": name},
            "time": _NUM,
            "schema_version": {"const": 1},
            "run_id": _STR,
            **props,
        },
        "required": ["signal", "time", *props],
        "additionalProperties": False,
    }


def _closed(props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


_MODES = _closed({"mock": _COUNT, "dry_run": _COUNT, "live": _COUNT})
_RECOMMENDED = _closed({
    "live": _RATE,
    "current": _RATE,
    "status": {"enum": ["qualified", "insufficient_evidence", "no_samples"]},
    "evidence_threshold": _RATE_OR_NULL,
    "n": _COUNT,
    "successes": _COUNT,
    "interval": {"type": ["array", "null"], "items": _RATE, "minItems": 2, "maxItems": 2},
    "samples": _COUNT,
})

#: JSON Schema of each signal type, keyed by the ``signal`` field.
SIGNAL_SCHEMAS: dict[str, dict[str, Any]] = {
    "TOOL_RELIABILITY": _signal_schema("TOOL_RELIABILITY", {
        "tool": _STR,
        "success_rate": _RATE,
        "latency_ms_mean": {"type": ["number", "null"], "minimum": 0},
        "rollback_rate": _RATE,
        "samples": {"type": "integer", "minimum": 1},
    }, "Per tool, over its dry_run and live executions: success rate, mean latency, "
       "share of its calls rolled back, number of executions."),
    "APPROVAL_MISMATCH": _signal_schema("APPROVAL_MISMATCH", {
        "call_id": _STR,
        "tool": _STR,
        "kind": {"enum": list(MISMATCH_KINDS)},
        "confidence": {"type": ["number", "null"]},
        "outcome": _STR,
        "detail": _STR,
    }, "A call whose confidence or validation disagrees with its outcome."),
    "EXECUTION_MODE_ANALYSIS": _signal_schema("EXECUTION_MODE_ANALYSIS", {
        "risk": {"enum": [r.value for r in Risk]},
        "calls": _COUNT,
        "modes": _MODES,
        "held_back": _closed({"live": _COUNT, "dry_run": _COUNT}),
        "thresholds": _closed({"dry_run": _RATE, "live": _RATE}),
        "recommended": _RECOMMENDED,
    }, "Per risk: calls by the mode they last ran in, calls each threshold held back, "
       "and the recommended live threshold."),
    "CONFLICT_PATTERN": _signal_schema("CONFLICT_PATTERN", {
        "conflicts": _COUNT,
        "pairs": {"type": "array", "items": _closed({
            "tools": {"type": "array", "items": _STR, "minItems": 2, "maxItems": 2},
            "count": _COUNT,
            "types": {"type": "array", "items": _STR},
        })},
        "resources": {"type": "array", "items": _closed({
            "resource": _STR, "count": _COUNT, "types": {"type": "array", "items": _STR},
        })},
        "suggested_ordering": {"type": "array", "items": _closed({
            "before": _STR, "after": _STR, "count": _COUNT, "reason": _STR,
        })},
    }, "The most frequent conflicting tool pairs and resources, and an ordering to declare."),
}

#: One line of a Phase-22 validations file.
VALIDATION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Phase-22 validation",
    "type": "object",
    "properties": {
        "phase22_validation_id": {"type": "string", "minLength": 1},
        "call_id": {"type": "string", "minLength": 1},
        "valid": {"type": "boolean"},
        "detail": {"type": "string"},
    },
    "required": ["valid"],
    "anyOf": [{"required": ["phase22_validation_id"]}, {"required": ["call_id"]}],
    "additionalProperties": False,
}


def validation_problems(lines: list[Any], file: str, *, linenos: list[int] | None = None) -> list[Problem]:
    """Every problem of the parsed validation lines; the file is named ``file:LINE``
    (``linenos`` gives each line's number when blank or broken lines were skipped)."""
    validator = jsonschema.Draft202012Validator(VALIDATION_SCHEMA)
    problems = []
    numbers = linenos if linenos is not None else range(1, len(lines) + 1)
    for lineno, doc in zip(numbers, lines):
        for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
            pointer = "".join(f"/{p}" for p in err.absolute_path)
            if err.validator == "anyOf":
                msg = "expected a phase22_validation_id or a call_id"
            elif err.validator == "required":
                msg = f"expected a field {err.message.split(' is a required')[0]} (required)"
            else:
                msg = f"expected {_expected(err)}"
            problems.append(Problem(f"{file}:{lineno}", pointer, msg))
    return problems


def _expected(err: jsonschema.ValidationError) -> str:
    if err.validator == "type":
        return f"a {err.validator_value}, got {type(err.instance).__name__}"
    if err.validator == "additionalProperties":
        return f"only phase22_validation_id, call_id, valid, detail ({err.message})"
    return err.message


# --------------------------------------------------------------------------
# Signals
# --------------------------------------------------------------------------


def _as_dict(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else attrs.asdict(x, recurse=False)


def _thresholds(policy: Policy, risk: Risk, tool: str) -> tuple[float, float, str]:
    """Effective (dry_run, live) thresholds of a call of ``tool`` and their source."""
    base = policy.threshold(risk)
    dry, live, source = base.dry_run, base.live, "policy"
    ov = policy.override(tool)
    if ov is not None:
        if ov.live is not None:
            live, source = ov.live, "tool_override"
        if ov.dry_run is not None:
            dry, source = ov.dry_run, "tool_override"
    return dry, live, source


def _risk(value: Any) -> Risk | None:
    try:
        return Risk(value)
    except ValueError:
        return None


def _signal(name: str, time: float, **fields: Any) -> dict[str, Any]:
    return {"signal": name, "time": time, **fields}


def build_signals(
    *,
    executions: Iterable[Any],
    rollbacks: Iterable[Any],
    conflicts: Iterable[Any],
    calls: list[dict[str, Any]],
    policy: Policy,
    validations: Iterable[dict[str, Any]] = (),
    time: float,
) -> list[dict[str, Any]]:
    """Every learning signal of a run, in a stable order: TOOL_RELIABILITY by
    tool, APPROVAL_MISMATCH in call order (then validations), EXECUTION_MODE_ANALYSIS
    low/medium/high, then one CONFLICT_PATTERN when there were conflicts.

    ``calls`` are dicts with call_id, tool, risk, confidence, final_state and
    optionally phase22_validation_id and approved_by (the summary's call rows).
    """
    execs = [_as_dict(e) for e in executions]
    rbs = [_as_dict(r) for r in rollbacks]
    confs = [_as_dict(c) for c in conflicts]
    out = _reliability(execs, rbs, time)
    out += _mismatches(execs, calls, policy, time)
    out += correlate(list(validations), calls, time=time)
    out += _mode_analysis(execs, calls, policy, time)
    out += _conflict_patterns(confs, calls, execs, time)
    return out


def _reliability(execs: list[dict], rbs: list[dict], time: float) -> list[dict]:
    per_tool: dict[str, list[dict]] = defaultdict(list)
    for e in execs:
        if e["mode"] in _REAL_MODES:
            per_tool[e["tool"]].append(e)
    rolled = {r["call_id"] for r in rbs if r["outcome"] in _ROLLED}
    out = []
    for tool in sorted(per_tool):
        rows = per_tool[tool]
        n = len(rows)
        lat = [e["duration_ms"] for e in rows if isinstance(e.get("duration_ms"), (int, float))]
        tool_calls = {e["call_id"] for e in rows}
        out.append(_signal(
            "TOOL_RELIABILITY", time, tool=tool,
            success_rate=sum(e["outcome"] == "succeeded" for e in rows) / n,
            latency_ms_mean=(sum(lat) / len(lat)) if lat else None,
            rollback_rate=len(tool_calls & rolled) / len(tool_calls),
            samples=n,
        ))
    return out


def _mismatches(execs: list[dict], calls: list[dict], policy: Policy, time: float) -> list[dict]:
    by_call: dict[str, list[dict]] = defaultdict(list)
    for e in execs:
        by_call[e["call_id"]].append(e)
    out = []
    for c in calls:
        risk = _risk(c.get("risk"))
        conf = c.get("confidence")
        if risk is None or not isinstance(conf, (int, float)):
            continue
        dry_t, live_t, source = _thresholds(policy, risk, c["tool"])
        state = c.get("final_state", "")
        mine = by_call.get(c["call_id"], [])
        if state == "failed" and conf >= live_t:
            errors = [e.get("error") for e in mine if e.get("error")]
            why = f": {errors[-1]}" if errors else ""
            out.append(_signal(
                "APPROVAL_MISMATCH", time, call_id=c["call_id"], tool=c["tool"],
                kind="high_confidence_failure", confidence=conf, outcome=state,
                detail=f"confidence {conf:g} >= live threshold {live_t:g} ({risk.value}, {source}) "
                       f"yet the call failed{why}"))
        approved_by = c.get("approved_by") or next(
            (e["decision"].get("approved_by") for e in mine
             if isinstance(e.get("decision"), dict) and e["decision"].get("approved_by")), None)
        base_live = policy.threshold(risk).live
        live_runs = [e for e in mine if e["mode"] == "live"]
        if live_runs and conf < base_live:
            by = f", approved by {approved_by}" if approved_by else ""
            out.append(_signal(
                "APPROVAL_MISMATCH", time, call_id=c["call_id"], tool=c["tool"],
                kind="low_confidence_approved", confidence=conf, outcome=state,
                detail=f"ran LIVE at confidence {conf:g} below the {risk.value} live threshold "
                       f"{base_live:g} (permitted by {source}{by})"))
        elif approved_by and conf < dry_t:
            out.append(_signal(
                "APPROVAL_MISMATCH", time, call_id=c["call_id"], tool=c["tool"],
                kind="low_confidence_approved", confidence=conf, outcome=state,
                detail=f"approved by {approved_by} at confidence {conf:g} below the dry_run "
                       f"threshold {dry_t:g} ({risk.value}, {source})"))
    return out


def correlate(validations: list[dict[str, Any]], calls: list[dict[str, Any]], *,
              time: float = 0.0) -> list[dict[str, Any]]:
    """APPROVAL_MISMATCH ``validation_contradicts`` signals.

    A validation names a call (``call_id``) or every call of a plan
    (``phase22_validation_id``). It contradicts a call that ended failed when
    it says valid, or one whose own execution succeeded (succeeded, or later
    rolled back) when it says invalid. Calls that never ran or whose outcome
    is unknown are not judged; a validation naming no call yields nothing.
    """
    by_id: dict[str, dict] = {c["call_id"]: c for c in calls}
    by_v22: dict[str, list[dict]] = defaultdict(list)
    for c in calls:
        if c.get("phase22_validation_id"):
            by_v22[c["phase22_validation_id"]].append(c)
    out = []
    for v in validations:
        if v.get("call_id") is not None:
            targets = [by_id[v["call_id"]]] if v["call_id"] in by_id else []
            ref = f"validation of call {v['call_id']}"
        else:
            targets = by_v22.get(v.get("phase22_validation_id"), [])
            ref = f"Phase-22 validation {v.get('phase22_validation_id')}"
        valid = bool(v["valid"])
        note = f" ({v['detail']})" if v.get("detail") else ""
        for c in targets:
            state = c.get("final_state", "")
            ok = _VALIDATED_OUTCOME.get(state)
            if ok is None or ok == valid:
                continue
            verdict = "valid" if valid else "invalid"
            out.append(_signal(
                "APPROVAL_MISMATCH", time, call_id=c["call_id"], tool=c["tool"],
                kind="validation_contradicts", confidence=c.get("confidence"), outcome=state,
                detail=f"{ref} says {verdict}{note} but the call ended {state}"))
    return out


def _mode_analysis(execs: list[dict], calls: list[dict], policy: Policy, time: float) -> list[dict]:
    last_mode: dict[str, str] = {}
    for e in execs:
        last_mode[e["call_id"]] = e["mode"]
    recs = recommend(samples_from_executions(execs), policy)
    out = []
    for risk in (Risk.LOW, Risk.MEDIUM, Risk.HIGH):
        mine = [c for c in calls if c.get("risk") == risk.value]
        modes = Counter(last_mode[c["call_id"]] for c in mine if c["call_id"] in last_mode)
        held_live = held_dry = 0
        for c in mine:
            conf = c.get("confidence")
            if c.get("final_state") == "rejected" or not isinstance(conf, (int, float)):
                continue
            dry_t, live_t, _ = _thresholds(policy, risk, c["tool"])
            held_live += conf < live_t
            held_dry += conf < dry_t
        r = recs["risks"][risk.value]
        t = policy.threshold(risk)
        out.append(_signal(
            "EXECUTION_MODE_ANALYSIS", time, risk=risk.value, calls=len(mine),
            modes={m: modes.get(m, 0) for m in ("mock", "dry_run", "live")},
            held_back={"live": held_live, "dry_run": held_dry},
            thresholds={"dry_run": t.dry_run, "live": t.live},
            recommended={"live": r["recommended"], "current": r["current"], "status": r["status"],
                         "evidence_threshold": r["evidence_threshold"], "n": r["n"],
                         "successes": r["successes"], "interval": r["interval"],
                         "samples": r["total_samples"]},
        ))
    return out


def _conflict_patterns(confs: list[dict], calls: list[dict], execs: list[dict],
                       time: float) -> list[dict]:
    if not confs:
        return []
    tool_of: dict[str, str] = {e["call_id"]: e["tool"] for e in execs}
    tool_of.update({c["call_id"]: c["tool"] for c in calls})
    pairs: Counter[tuple[str, str]] = Counter()
    pair_types: dict[tuple[str, str], set[str]] = defaultdict(set)
    first: Counter[tuple[str, str]] = Counter()  # (a, b): a's calls came first in the group
    resources: Counter[str] = Counter()
    res_types: dict[str, set[str]] = defaultdict(set)
    for cf in confs:
        res = cf.get("resource") or ""
        resources[res] += 1
        res_types[res].add(cf["type"])
        order: list[str] = []  # distinct tools in the group's call order
        count: Counter[str] = Counter()
        for cid in cf["calls"]:
            tool = tool_of.get(cid, cid)
            if tool not in count:
                order.append(tool)
            count[tool] += 1
        group_pairs = {(t, t) for t in order if count[t] > 1}
        for i, a in enumerate(order):
            for b in order[i + 1:]:
                group_pairs.add(tuple(sorted((a, b))))
                first[(a, b)] += 1
        for p in group_pairs:
            pairs[p] += 1
            pair_types[p].add(cf["type"])
    top_pairs = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_N]
    top_res = sorted(resources.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_N]
    ordering = []
    for (a, b), n in top_pairs:
        if a == b:
            continue
        before, after = (a, b) if first[(a, b)] >= first[(b, a)] else (b, a)
        ordering.append({
            "before": before, "after": after, "count": n,
            "reason": f"{n} conflict(s) ({', '.join(sorted(pair_types[(a, b)]))}) resolved with "
                      f"{before} first {first[(before, after)]} time(s); declaring the order "
                      f"(`after:` in the plans) avoids the conflict",
        })
    return [_signal(
        "CONFLICT_PATTERN", time, conflicts=len(confs),
        pairs=[{"tools": list(p), "count": n, "types": sorted(pair_types[p])} for p, n in top_pairs],
        resources=[{"resource": r, "count": n, "types": sorted(res_types[r])} for r, n in top_res],
        suggested_ordering=ordering,
    )]
