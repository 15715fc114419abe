"""JSON Schemas of the three input files, generated from the attrs model.

The schemas are derived from ``interlock.core.model`` (field names, types,
defaults) plus one table of constraints the types cannot say (ranges, allowed
words, required keys). Because they are generated, they cannot drift from the
model; ``interlock.core.convert`` checks every document against them with
:func:`prelude_problems` and :func:`schema_problems` before it applies the rules that need more than one
field, so the published files in ``specs/schemas/`` are exactly what the
loader enforces at the structural level.

Two deliberate strictnesses beyond plain JSON Schema, both "never coerce":
an integer field takes only integers (``2.0`` is refused), and a document must
be JSON data (no NaN or infinity, string keys only, no YAML dates, bytes or
sets). The published schemas state the first as ``"type": "integer"``; a
generic validator is therefore slightly more lenient than the loader, never
stricter (``tests/property/test_loading_fuzz.py`` checks that direction).
"""

from __future__ import annotations

import difflib
import enum
import functools
import math
import types
import typing
from typing import Any

import attrs
import jsonschema

from interlock.core import model
from interlock.core.errors import Problem

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_VERSION = 1

#: Nesting deeper than this is refused before any other check (and keeps every
#: later recursive step far from Python's recursion limit).
MAX_DEPTH = 100

#: The metric names the health score may weigh (docs/monitor.md).
HEALTH_METRICS = (
    "tool_success_rate", "rollback_frequency", "conflict_rate",
    "confidence_drift", "approval_rate", "latency",
)
ANOMALY_ACTIONS = ("lock", "alert", "review", "reorder")

_UNIT = {"minimum": 0, "maximum": 1}
_NAME = {"minLength": 1, "pattern": "^[^/]*$"}
_NON_EMPTY = {"minLength": 1}
_STRATEGIES_ORDERING = ["serialize", "priority", "escalate"]

#: What the types cannot say. Keys are "Class.field"; values are merged into the
#: generated property schema. "required": True makes a defaulted field required.
_CONSTRAINTS: dict[str, dict[str, Any]] = {
    # catalog
    "Catalog.schema_version": {"const": SCHEMA_VERSION, "required": True,
                               "description": "Format version of this file; this interlock reads 1."},
    "Catalog.tools": {"description": "The tool contracts."},
    "ToolContract.name": {**_NAME, "description": "Unique tool name (no '/')."},
    "ToolContract.risk": {"description": "Risk of a call of this tool; selects the thresholds."},
    "ToolContract.reversible": {"description": "True requires a rollback."},
    "ToolContract.rollback": {"description": "The compensating tool and its argument templates."},
    "ToolContract.idempotent": {"description": "Safe to retry with the same args."},
    "ToolContract.effects": {"description": "Resource templates over args, e.g. file:{path}."},
    "ToolContract.conflicts_with": {"description": "Tools mutually exclusive with this one on shared resources."},
    "ToolContract.max_concurrency": {"minimum": 1, "description": "At most this many concurrent calls; null: no limit."},
    "ToolContract.timeout_s": {"exclusiveMinimum": 0},
    "ToolContract.retries": {"minimum": 0},
    "ToolContract.input_schema": {"description": "JSON Schema (draft 2020-12) of the args."},
    "ToolContract.mock_result": {"description": "What MOCK returns: any JSON value."},
    "RollbackSpec.tool": {**_NAME, "description": "A tool of this catalog."},
    "RollbackSpec.args": {"description": "Templates: {arg} of the call, {result.key} of its result."},
    # plans
    "PlanSet.schema_version": {"const": SCHEMA_VERSION, "required": True,
                               "description": "Format version of this file; this interlock reads 1."},
    "PlanSet.plans": {"required": True},
    "Plan.plan_id": {**_NAME, "description": "Unique in the file (no '/')."},
    "Plan.agent_id": {**_NON_EMPTY},
    "Plan.steps": {"required": True},
    "Plan.priority": {"description": "Higher wins priority conflicts."},
    "Step.id": {**_NAME, "description": "Step id (no '/'); other plans refer to it as plan_id/step_id."},
    "Step.tool": {**_NON_EMPTY, "description": "A tool of the catalog."},
    "Step.confidence": {**_UNIT, "description": "The agent's confidence that the call is right."},
    "Step.args": {"description": "Checked against the tool's input_schema."},
    "Step.after": {"description": "Dependencies: a step id of this plan, or plan_id/step_id."},
    "Step.idempotency_key": {**_NON_EMPTY, "description": "Default: sha256 of tool and canonical args."},
    # policy
    "Policy.schema_version": {"const": SCHEMA_VERSION,
                              "description": "Format version of this file; this interlock reads 1."},
    "Policy.allow_live": {"description": "LIVE is possible only when true."},
    "Policy.lock_mode": {"description": "What a locked system may still run."},
    "Policy.max_concurrency": {"minimum": 1},
    "Policy.thresholds": {"description": "Per risk: minimum confidence for DRY_RUN and LIVE; "
                                         "given values are merged over the defaults."},
    "Policy.tools": {"description": "Per-tool overrides, keyed by tool name."},
    "Threshold.dry_run": {**_UNIT},
    "Threshold.live": {**_UNIT},
    "ToolOverride.live": {**_UNIT},
    "ToolOverride.dry_run": {**_UNIT},
    "ApprovalPolicy.required_for": {"uniqueItems": True,
                                    "description": "Risks that need approval for LIVE; upward closed."},
    "ApprovalPolicy.timeout_s": {"exclusiveMinimum": 0},
    "ConflictPolicy.write_write": {"enum": _STRATEGIES_ORDERING},
    "ConflictPolicy.read_write": {"enum": _STRATEGIES_ORDERING},
    "ConflictPolicy.mutually_exclusive": {"enum": _STRATEGIES_ORDERING},
    "ConflictPolicy.duplicate_irreversible": {"enum": ["deduplicate", "serialize", "escalate"]},
    "ConflictPolicy.capacity": {"enum": ["serialize"]},
    "ConflictPolicy.dependency": {"enum": ["escalate"]},
    "AnomalyPolicy.window": {"minimum": 1, "description": "Sliding window of executions."},
    "AnomalyPolicy.min_samples": {"minimum": 1, "description": "No anomaly fires on fewer."},
    "DriftRule.drift_gt": {**_UNIT},
    "DriftRule.severity": {"minimum": 1, "maximum": 10},
    "DriftRule.action": {"enum": list(ANOMALY_ACTIONS)},
    "SuccessRule.success_lt": {**_UNIT},
    "SuccessRule.severity": {"minimum": 1, "maximum": 10},
    "SuccessRule.action": {"enum": list(ANOMALY_ACTIONS)},
    "RateRule.rate_gt": {**_UNIT},
    "RateRule.severity": {"minimum": 1, "maximum": 10},
    "RateRule.action": {"enum": list(ANOMALY_ACTIONS)},
    "LearningPolicy.target_success": {"exclusiveMinimum": 0, "maximum": 1},
    "LearningPolicy.auto_tune": {"description": "Recommendations change policy only when true."},
    "LearningPolicy.floor": {"description": "Live thresholds are never tuned below these."},
    "HealthPolicy.weights": {"description": "Weight per metric (>= 0, positive sum); "
                                            "given values are merged over the defaults."},
    "HealthPolicy.latency_budget_ms": {"exclusiveMinimum": 0},
}

#: Constraints on the values of a mapping field (``dict[K, V]``), by "Class.field".
_VALUE_CONSTRAINTS: dict[str, dict[str, Any]] = {
    "LearningPolicy.floor": {**_UNIT},
    "HealthPolicy.weights": {"minimum": 0},
}

#: Mapping fields whose keys are a fixed set of names (not an enum in the model).
_FIXED_KEYS: dict[str, tuple[str, ...]] = {"HealthPolicy.weights": HEALTH_METRICS}

_FILES = {
    "catalog.schema.json": (model.Catalog, False, "interlock tool catalog",
                            "Tool contracts: risk, reversibility, rollback, effects, limits, input schema."),
    "plans.schema.json": (model.PlanSet, False, "interlock plans",
                          "Plans of tool calls submitted by agents, with a confidence per step."),
    "policy.schema.json": (model.Policy, True, "interlock policy",
                           "Execution policy. Every field is optional; the defaults are safe (no LIVE)."),
}
_KIND_FILE = {"catalog": "catalog.schema.json", "plans": "plans.schema.json", "policy": "policy.schema.json"}


# --------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------


def input_schemas() -> dict[str, dict]:
    """The three input schemas (draft 2020-12), keyed by file name. Fresh dicts each call."""
    return {name: _generate(cls, partial, title, text)
            for name, (cls, partial, title, text) in _FILES.items()}


def _generate(root: type, partial: bool, title: str, text: str) -> dict:
    defs: dict[str, dict] = {}
    body = _class_body(root, partial, defs)
    return {"$schema": DRAFT, "title": title, "description": text, "type": "object",
            **body, "$defs": dict(sorted(defs.items()))}


def _class_body(cls: type, partial: bool, defs: dict[str, dict]) -> dict:
    """properties / required / additionalProperties of an attrs class.

    No ``type`` here: the use site says ``object`` or ``[object, null]``, so the
    same definition serves a nullable field without ``anyOf``.
    """
    from interlock.core.convert import unstructure  # convert imports this module

    hints = typing.get_type_hints(cls)
    props: dict[str, Any] = {}
    required: list[str] = []
    for f in attrs.fields(cls):
        if not f.init:
            continue
        key = f"{cls.__name__}.{f.name}"
        extra = dict(_CONSTRAINTS.get(key, {}))
        must = extra.pop("required", False)
        sub = _type_schema(hints[f.name], partial, defs, key)
        sub.update(extra)
        default = _default_of(f)
        if default is attrs.NOTHING:
            must = True
        elif not (must and not partial):  # a required field's default would never apply
            sub["default"] = unstructure(default)
        if must and not partial:
            required.append(f.name)
        props[f.name] = sub
    body: dict[str, Any] = {"properties": props, "additionalProperties": False}
    if required:
        body["required"] = required
    return body


def _default_of(f: attrs.Attribute) -> Any:
    d = f.default
    if isinstance(d, attrs.Factory):  # type: ignore[arg-type]
        return attrs.NOTHING if d.takes_self else d.factory()
    return d


def _type_schema(tp: Any, partial: bool, defs: dict[str, dict], key: str) -> dict:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"{key}: only X | None unions are supported")
        sub = _type_schema(rest[0], partial, defs, key)
        if "type" in sub:
            sub["type"] = [sub["type"], "null"] if isinstance(sub["type"], str) else [*sub["type"], "null"]
        return sub
    if tp is Any:
        return {}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str:
        return {"type": "string"}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"type": "string", "enum": [_enum_word(m) for m in tp]}
    if attrs.has(tp):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # placeholder against recursion
            defs[name] = _class_body(tp, partial, defs)
        return {"type": "object", "$ref": f"#/$defs/{name}"}
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return {"type": "array", "items": _type_schema(args[0], partial, defs, key)}
    if origin is dict:
        k, v = args
        value = _type_schema(v, partial, defs, key)
        value.update(_VALUE_CONSTRAINTS.get(key, {}))
        if isinstance(k, type) and issubclass(k, enum.Enum):
            names: tuple[str, ...] = tuple(_enum_word(m) for m in k)
        elif key in _FIXED_KEYS:
            names = _FIXED_KEYS[key]
        else:
            return {"type": "object", "additionalProperties": value} if v is not Any else {"type": "object"}
        return {"type": "object", "properties": {n: dict(value) for n in names},
                "additionalProperties": False}
    raise TypeError(f"{key}: no schema for type {tp!r}")


def _enum_word(member: enum.Enum) -> str:
    return member.label if isinstance(member, model.Mode) else member.value


# --------------------------------------------------------------------------
# Checking a document against a schema, with messages a user can act on
# --------------------------------------------------------------------------


def _is_strict_int(checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


_STRICT_TYPES = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_strict_int)
_StrictValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, type_checker=_STRICT_TYPES)


@functools.cache
def _validator(kind: str) -> Any:
    return _StrictValidator(input_schemas()[_KIND_FILE[kind]])


def pointer(path: typing.Iterable[Any]) -> str:
    """RFC 6901 JSON pointer of a path of keys and indexes."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def prelude_problems(doc: Any, file: str) -> list[Problem]:
    """Problems that stop all further checks: not JSON data, not a mapping at the
    top, or another ``schema_version`` (a file of another version would only
    produce noise)."""
    problems = json_data_problems(doc, file)
    if problems:
        return problems
    if not isinstance(doc, dict):
        return [Problem(file, "", f"expected a mapping at the top level, got {describe_value(doc)}")]
    if "schema_version" in doc:
        version = doc["schema_version"]
        if _is_strict_int(None, version) and version != SCHEMA_VERSION:
            return [Problem(file, "/schema_version",
                            f"unsupported schema_version {version}; this interlock reads {SCHEMA_VERSION}")]
        if not _is_strict_int(None, version):
            return [Problem(file, "/schema_version",
                            f"expected schema_version {SCHEMA_VERSION} (an integer), got "
                            f"{describe_value(version)}; this interlock reads {SCHEMA_VERSION}")]
    return []


def schema_problems(doc: dict, kind: str, file: str) -> list[Problem]:
    """Everything the schema of ``kind`` (catalog, plans or policy) finds wrong with
    ``doc`` (which passed :func:`prelude_problems`), in words a user can act on."""
    out: list[Problem] = []
    for err in _validator(kind).iter_errors(doc):
        out.extend(_translate(err, file))
    return out


def json_data_problems(doc: Any, file: str, base: tuple[Any, ...] = ()) -> list[Problem]:
    """Values that are not JSON data: NaN/infinity, non-string keys, YAML dates,
    bytes, sets, recursive structures, nesting deeper than MAX_DEPTH.

    Iterative (no recursion) so that a hostile document cannot exhaust the stack.
    """
    problems: list[Problem] = []
    stack: list[tuple[Any, tuple[Any, ...], frozenset[int]]] = [(doc, base, frozenset())]
    while stack:
        value, path, ancestors = stack.pop()
        if isinstance(value, (dict, list)):
            if id(value) in ancestors:
                problems.append(Problem(file, pointer(path),
                                        "recursive structure (a YAML alias that contains itself); "
                                        "expected plain JSON data"))
                continue
            if len(path) - len(base) >= MAX_DEPTH:
                problems.append(Problem(file, pointer(path),
                                        f"nested more than {MAX_DEPTH} levels deep; expected flatter data"))
                continue
            inner = ancestors | {id(value)}
            if isinstance(value, dict):
                items = list(value.items())
                for k, v in reversed(items):
                    if not isinstance(k, str):
                        problems.append(Problem(file, pointer((*path, k)),
                                                f"mapping key {k!r} ({type(k).__name__}) is not a "
                                                "string; expected a string key (quote it)"))
                        continue
                    stack.append((v, (*path, k), inner))
            else:
                for i in range(len(value) - 1, -1, -1):
                    stack.append((value[i], (*path, i), inner))
        elif isinstance(value, float):
            if not math.isfinite(value):
                problems.append(Problem(file, pointer(path),
                                        f"expected a finite number, got {value!r} (not valid JSON)"))
        elif value is None or isinstance(value, (str, int, bool)):
            continue
        else:
            problems.append(Problem(file, pointer(path),
                                    f"expected JSON data (string, number, boolean, null, list or "
                                    f"mapping), got {describe_value(value)}; quote it if it is text"))
    return problems


def _translate(err: Any, file: str) -> list[Problem]:
    path = tuple(err.absolute_path)
    where = pointer(path)
    kw, schema, inst = err.validator, err.schema, err.instance
    if kw == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        out = []
        for key in sorted(k for k in inst if k not in schema.get("properties", {})):
            out.append(Problem(file, pointer((*path, key)), unknown_key_message(key, allowed)))
        return out
    if kw == "required":
        out = []
        for name in err.validator_value:
            if name not in inst:
                expected = describe_schema(schema.get("properties", {}).get(name, {}))
                out.append(Problem(file, pointer((*path, name)),
                                   f"missing required field {name!r} (expected {expected})"))
        return out
    if kw == "type":
        msg = f"expected {describe_schema(schema)}, got {describe_value(inst)}"
        return [Problem(file, where, msg + _quote_hint(inst, schema))]
    if kw == "uniqueItems":
        seen: list[Any] = []
        for i, item in enumerate(inst):
            if item in seen:
                return [Problem(file, pointer((*path, i)),
                                f"{describe_value(item)} is listed twice; expected each value once")]
            seen.append(item)
    if kw == "minLength" and err.validator_value == 1:
        return [Problem(file, where, "must not be empty")]
    if kw == "pattern" and err.validator_value == _NAME["pattern"]:
        return [Problem(file, where, f"{inst!r} contains '/'; expected a name without '/' "
                                     "('/' separates plan and step in references)")]
    return [Problem(file, where, f"expected {describe_schema(schema)}, got {describe_value(inst)}")]


def unknown_key_message(key: str, allowed: typing.Sequence[str], what: str = "key",
                        where: str = "") -> str:
    """``unknown key 'riks'; did you mean 'risk'?`` (typos are never ignored)."""
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    if not allowed:
        listing = " (there are none)"
    elif len(allowed) <= 20:
        listing = f" (expected one of: {', '.join(allowed)})"
    else:
        listing = ""
    return f"unknown {what} {key!r}{' ' + where if where else ''}{hint}{listing}"


def _quote_hint(inst: Any, schema: dict) -> str:
    if not isinstance(inst, str):
        if isinstance(inst, bool) and _types(schema) & {"number", "integer"}:
            return "; a boolean is not a number"
        return ""
    wanted = _types(schema)
    text = inst.strip()
    if wanted & {"number", "integer"}:
        try:
            float(text)
        except ValueError:
            return ""
        return f"; write {text} without quotes"
    if "boolean" in wanted and text.lower() in ("true", "false"):
        return f"; write {text.lower()} without quotes"
    return ""


def _types(schema: dict) -> set[str]:
    t = schema.get("type", [])
    return {t} if isinstance(t, str) else set(t)


_NOUNS = {"string": "a string", "integer": "an integer", "number": "a number",
          "boolean": "true or false", "object": "a mapping", "array": "a list", "null": "null"}


def describe_schema(schema: dict) -> str:
    """A short English phrase for what a schema accepts ("a number between 0 and 1")."""
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        words = ", ".join(str(v) for v in schema["enum"])
        base = f"one of: {words}"
        return base + " or null" if "null" in _types(schema) else base
    types_ = schema.get("type")
    if types_ is None:
        return "any JSON value"
    names = [types_] if isinstance(types_, str) else list(types_)
    phrases = []
    for name in names:
        phrase = _NOUNS[name]
        if name in ("number", "integer"):
            phrase += _range_phrase(schema)
        elif name == "string":
            if schema.get("minLength") == 1:
                phrase = "a non-empty string"
            if schema.get("pattern") == _NAME["pattern"]:
                phrase += " without '/'"
        elif name == "array" and "items" in schema:
            item = schema["items"]
            if "enum" in item:
                phrase += f" of: {', '.join(map(str, item['enum']))}"
            elif item.get("type") == "string":
                phrase += " of strings"
        phrases.append(phrase)
    return " or ".join(phrases)


def _range_phrase(schema: dict) -> str:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    xlo = schema.get("exclusiveMinimum")
    if lo is not None and hi is not None:
        return f" between {lo} and {hi}"
    if xlo is not None and hi is not None:
        return f" greater than {xlo} and at most {hi}"
    if xlo is not None:
        return f" greater than {xlo}"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""


def describe_value(value: Any) -> str:
    """A short phrase for a value as a user wrote it ("the string '0.9'")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a value of type {type(value).__name__}"
