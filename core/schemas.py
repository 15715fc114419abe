"""JSON Schemas of the three input files, generated from the attrs model, and
the checker that applies them with messages a user can act on.

The schemas are derived from ``interlock.core.model`` (field names, types,
defaults) plus one table of constraints the types cannot say (ranges, allowed
words, required keys). Because they are generated, they cannot drift from the
model; ``interlock.core.convert`` checks every document against them
(:func:`prelude_problems`, then :func:`schema_problems`) before it applies the
rules that need more than one field, so the published files in
``specs/schemas/`` are exactly what the loader enforces at the structural level.

Two deliberate strictnesses beyond plain JSON Schema, both "never coerce":
an integer field takes only integers (``2.0`` is refused), and a document must
be JSON data (no NaN or infinity, string keys only, no YAML dates, bytes or
sets). A generic validator of the published files is therefore slightly more
lenient than the loader, never stricter (``tests/property/test_loading_fuzz.py``
checks that direction, and that :class:`Checker` agrees with jsonschema).
"""

from __future__ import annotations

import difflib
import enum
import functools
import math
import re
import types
import typing
from typing import Any

import attrs

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
        if _is_int(version) and version != SCHEMA_VERSION:
            return [Problem(file, "/schema_version",
                            f"unsupported schema_version {version}; this interlock reads {SCHEMA_VERSION}")]
        if not _is_int(version):
            return [Problem(file, "/schema_version",
                            f"expected schema_version {SCHEMA_VERSION} (an integer), got "
                            f"{describe_value(version)}; this interlock reads {SCHEMA_VERSION}")]
    return []


def schema_problems(doc: dict, kind: str, file: str) -> list[Problem]:
    """Everything the schema of ``kind`` (catalog, plans or policy) finds wrong with
    ``doc`` (which passed :func:`prelude_problems`), in words a user can act on."""
    return [Problem(file, pointer(e.where), e.message()) for e in _checker(kind).errors(doc)]


@functools.cache
def _checker(kind: str) -> Checker:
    return Checker(input_schemas()[_KIND_FILE[kind]], strict_int=True)


def json_data_problems(doc: Any, file: str, base: tuple[Any, ...] = ()) -> list[Problem]:
    """Values that are not JSON data: NaN/infinity, non-string keys, YAML dates,
    bytes, sets, recursive structures, nesting deeper than MAX_DEPTH.

    Iterative (no recursion) so that a hostile document cannot exhaust the
    stack; paths are built only for problems, so a large file costs little.
    """
    problems: list[Problem] = []
    path: list[Any] = []  # keys of the containers we are inside (not the root)
    on_path: set[int] = set()
    stack: list[tuple[Any, Any]] = [(doc, _ROOT)]

    def where(key: Any) -> str:
        return pointer((*base, *path) if key is _ROOT else (*base, *path, key))

    while stack:
        value, key = stack.pop()
        if value is _EXIT:
            on_path.discard(key)
            if path and key is not _ROOT_ID:
                path.pop()
            continue
        t = type(value)
        if t is str or t is bool or t is int or value is None:
            continue
        if t is float:
            if not math.isfinite(value):
                problems.append(Problem(file, where(key),
                                        f"expected a finite number, got {value!r} (not valid JSON)"))
            continue
        if isinstance(value, (dict, list)):
            vid = id(value)
            if vid in on_path:
                problems.append(Problem(file, where(key),
                                        "recursive structure (a YAML alias that contains itself); "
                                        "expected plain JSON data"))
                continue
            if len(path) + (key is not _ROOT) >= MAX_DEPTH:
                problems.append(Problem(file, where(key),
                                        f"nested more than {MAX_DEPTH} levels deep; expected flatter data"))
                continue
            on_path.add(vid)
            stack.append((_EXIT, vid if key is not _ROOT else _ROOT_ID))
            if key is not _ROOT:
                path.append(key)
            if isinstance(value, dict):
                for k in reversed(list(value)):
                    if isinstance(k, str):
                        stack.append((value[k], k))
                    else:
                        problems.append(Problem(file, where(k),
                                                f"mapping key {k!r} ({type(k).__name__}) is not a "
                                                "string; expected a string key (quote it)"))
            else:
                stack.extend((value[i], i) for i in range(len(value) - 1, -1, -1))
        elif isinstance(value, (str, int, bool)):
            continue
        else:
            problems.append(Problem(file, where(key),
                                    f"expected JSON data (string, number, boolean, null, list or "
                                    f"mapping), got {describe_value(value)}; quote it if it is text"))
    return problems


_ROOT = object()  # the key of the document itself
_ROOT_ID = object()  # exit marker of the root: nothing to pop
_EXIT = object()


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
    if not isinstance(schema, dict):
        return "any JSON value" if schema is True else "no value at all"
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
        elif name == "array" and isinstance(schema.get("items"), dict):
            item = schema["items"]
            if "enum" in item:
                phrase += f" of: {', '.join(map(str, item['enum']))}"
            elif item.get("type") == "string":
                phrase += " of strings"
        phrases.append(phrase)
    return " or ".join(phrases)


def _range_phrase(schema: dict) -> str:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    xlo, xhi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if xhi is not None:
        low = f" >= {lo} and" if lo is not None else f" > {xlo} and" if xlo is not None else ""
        return f"{low} < {xhi}"
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


# --------------------------------------------------------------------------
# A compiled checker for the JSON Schema subset these files (and most tool
# input schemas) use. jsonschema spends ~90 us on a small object ($ref and
# evolve machinery); a 100k-step plans file would take minutes. Compiled
# closures take a few us, and the messages are ours. Schemas with keywords
# outside the subset raise Unsupported: callers then use jsonschema itself.
# tests/property/test_loading_fuzz.py checks the verdicts agree with jsonschema.
# --------------------------------------------------------------------------

#: Keywords that only annotate: they never change a verdict.
_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$comment", "$schema",
                          "$defs", "deprecated", "readOnly", "writeOnly", "format"})
_KEYWORDS = frozenset({"type", "enum", "const", "properties", "required", "additionalProperties",
                       "items", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                       "minLength", "maxLength", "pattern", "minItems", "maxItems", "uniqueItems",
                       "$ref"}) | _ANNOTATIONS


class Unsupported(Exception):
    """The schema uses something the compiled checker does not implement."""


@attrs.frozen
class SchemaError:
    """One failed keyword: where, which keyword, the schema node and the value."""

    path: tuple[Any, ...]
    keyword: str
    schema: Any
    instance: Any
    detail: Any = None  # required: the missing name; additionalProperties: the extra key

    @property
    def where(self) -> tuple[Any, ...]:
        """The path a user should look at: for a missing key, the key itself."""
        return (*self.path, self.detail) if self.keyword == "required" else self.path

    def message(self) -> str:
        return _message(self)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1, 1 equals 1.0, containers compare deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b


_Check = typing.Callable[[Any, tuple, list], None]


class Checker:
    """``Checker(schema).errors(value)``: every failed keyword, in document order.

    ``strict_int``: an integer must be a Python int (the input files: never
    coerce). Without it, 2.0 is an integer, as JSON Schema says (tool input
    schemas are checked by the standard's rules).
    """

    def __init__(self, schema: Any, *, strict_int: bool = False) -> None:
        self._root = schema
        self._strict = strict_int
        self._refs: dict[str, _Check] = {}
        self._check = self._compile(schema)

    def errors(self, value: Any) -> list[SchemaError]:
        out: list[SchemaError] = []
        self._check(value, (), out)
        return out

    # -- compilation ---------------------------------------------------------

    def _compile(self, node: Any) -> _Check:
        if node is True or node == {}:
            return _accept
        if node is False:
            return lambda v, p, out: out.append(SchemaError(p, "false", node, v))
        if not isinstance(node, dict):
            raise Unsupported(f"schema node {node!r}")
        unknown = set(node) - _KEYWORDS
        if unknown:
            raise Unsupported(", ".join(sorted(unknown)))
        _well_formed(node)
        checks: list[_Check] = []
        if "$ref" in node:
            checks.append(self._ref(node["$ref"]))
        for kw in ("enum", "const"):
            if kw in node:
                checks.append(_equality(kw, node))
        if "properties" in node or "required" in node or "additionalProperties" in node:
            checks.append(self._object(node))
        if "items" in node or "uniqueItems" in node or "minItems" in node or "maxItems" in node:
            checks.append(self._array(node))
        if any(k in node for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
            checks.append(_range(node))
        if any(k in node for k in ("minLength", "maxLength", "pattern")):
            checks.append(_string(node))
        type_ok = self._type(node.get("type"))
        if type_ok is None and len(checks) == 1:
            return checks[0]

        def check(value: Any, path: tuple, out: list) -> None:
            if type_ok is not None and not type_ok(value):
                out.append(SchemaError(path, "type", node, value))
                return  # one mistake, one problem: the other keywords would only repeat it
            for c in checks:
                c(value, path, out)

        return check

    def _type(self, spec: Any) -> typing.Callable[[Any], bool] | None:
        if spec is None:
            return None
        names = [spec] if isinstance(spec, str) else list(spec)
        tests = []
        for name in names:
            if name == "integer" and not self._strict:
                tests.append(lambda v: _is_int(v) or (isinstance(v, float) and v.is_integer()))
            elif name in _TYPE_TESTS:
                tests.append(_TYPE_TESTS[name])
            else:
                raise Unsupported(f"type {name!r}")
        if len(tests) == 1:
            return tests[0]
        if len(tests) == 2:
            a, b = tests
            return lambda v: a(v) or b(v)
        return lambda v: any(t(v) for t in tests)

    def _ref(self, ref: Any) -> _Check:
        if not (isinstance(ref, str) and ref.startswith("#/$defs/") and "/" not in ref[8:] and "~" not in ref):
            raise Unsupported(f"$ref {ref!r}")
        if any(k in self._root for k in ("$id", "$anchor", "$dynamicAnchor")):
            raise Unsupported("$ref with $id")
        name = ref[8:]
        if ref not in self._refs:
            target = self._root.get("$defs", {}).get(name) if isinstance(self._root, dict) else None
            if target is None:
                raise Unsupported(f"unresolvable $ref {ref!r}")
            cell: list[_Check] = []
            self._refs[ref] = lambda v, p, out: cell[0](v, p, out)  # recursive definitions
            cell.append(self._compile(target))
        return self._refs[ref]

    def _object(self, node: dict) -> _Check:
        props = {k: self._compile(v) for k, v in node.get("properties", {}).items()}
        required = list(node.get("required", []))
        extra = node.get("additionalProperties", True)
        extra_check = None if extra is False else self._compile(extra)

        def check(value: Any, path: tuple, out: list) -> None:
            if not isinstance(value, dict):
                return
            for name in required:
                if name not in value:
                    out.append(SchemaError(path, "required", node, value, name))
            for key, item in value.items():
                sub = props.get(key)
                if sub is not None:
                    sub(item, (*path, key), out)
                elif extra_check is None:
                    out.append(SchemaError((*path, key), "additionalProperties", node, item, key))
                elif extra_check is not _accept:
                    extra_check(item, (*path, key), out)

        return check

    def _array(self, node: dict) -> _Check:
        items = self._compile(node.get("items", True))
        unique = node.get("uniqueItems", False)
        lo, hi = node.get("minItems"), node.get("maxItems")

        def check(value: Any, path: tuple, out: list) -> None:
            if not isinstance(value, list):
                return
            if lo is not None and len(value) < lo:
                out.append(SchemaError(path, "minItems", node, value))
            if hi is not None and len(value) > hi:
                out.append(SchemaError(path, "maxItems", node, value))
            if unique:
                for i in range(1, len(value)):
                    if any(_json_equal(value[i], value[j]) for j in range(i)):
                        out.append(SchemaError((*path, i), "uniqueItems", node, value[i]))
                        break
            if items is not _accept:
                for i, item in enumerate(value):
                    items(item, (*path, i), out)

        return check


def _well_formed(node: dict) -> None:
    """Keyword values of the shapes the metaschema allows; anything else is left
    to jsonschema (which reports or refuses it in its own way)."""
    def count(v: Any) -> bool:
        return _is_int(v) and v >= 0

    shapes: dict[str, typing.Callable[[Any], bool]] = {
        "type": lambda v: isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v)),
        "properties": lambda v: isinstance(v, dict),
        "required": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "additionalProperties": lambda v: isinstance(v, (bool, dict)),
        "items": lambda v: isinstance(v, (bool, dict)),
        "uniqueItems": lambda v: isinstance(v, bool),
        "pattern": lambda v: isinstance(v, str),
        "minLength": count, "maxLength": count, "minItems": count, "maxItems": count,
    }
    for kw, ok in shapes.items():
        if kw in node and not ok(node[kw]):
            raise Unsupported(f"{kw}: {node[kw]!r}")


def _accept(value: Any, path: tuple, out: list) -> None:
    return None


_TYPE_TESTS: dict[str, typing.Callable[[Any], bool]] = {
    "integer": _is_int,
    "number": _is_number,
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}


def _equality(kw: str, node: dict) -> _Check:
    allowed = node[kw] if kw == "enum" else [node[kw]]
    if not isinstance(allowed, list):
        raise Unsupported(f"{kw} {allowed!r}")

    def check(value: Any, path: tuple, out: list) -> None:
        if not any(_json_equal(value, a) for a in allowed):
            out.append(SchemaError(path, kw, node, value))

    return check


def _range(node: dict) -> _Check:
    bounds = [(kw, node[kw]) for kw in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
              if kw in node]
    if not all(_is_number(b) for _, b in bounds):
        raise Unsupported("non-numeric bound")
    fails = {"minimum": lambda v, b: v < b, "maximum": lambda v, b: v > b,
             "exclusiveMinimum": lambda v, b: v <= b, "exclusiveMaximum": lambda v, b: v >= b}

    def check(value: Any, path: tuple, out: list) -> None:
        if _is_number(value):
            for kw, b in bounds:
                if fails[kw](value, b):
                    out.append(SchemaError(path, kw, node, value))
                    return

    return check


def _string(node: dict) -> _Check:
    lo, hi = node.get("minLength"), node.get("maxLength")
    try:
        rx = re.compile(node["pattern"]) if "pattern" in node else None
    except (re.error, TypeError) as exc:
        raise Unsupported(f"pattern: {exc}") from None

    def check(value: Any, path: tuple, out: list) -> None:
        if not isinstance(value, str):
            return
        if lo is not None and len(value) < lo:
            out.append(SchemaError(path, "minLength", node, value))
        elif hi is not None and len(value) > hi:
            out.append(SchemaError(path, "maxLength", node, value))
        if rx is not None and not rx.search(value):
            out.append(SchemaError(path, "pattern", node, value))

    return check


def _message(e: SchemaError) -> str:
    kw, node, inst = e.keyword, e.schema, e.instance
    if kw == "additionalProperties":
        return unknown_key_message(e.detail, sorted(node.get("properties", {})))
    if kw == "required":
        expected = describe_schema(node.get("properties", {}).get(e.detail, {}))
        return f"missing required field {e.detail!r} (expected {expected})"
    if kw == "type":
        return f"expected {describe_schema(node)}, got {describe_value(inst)}{_quote_hint(inst, node)}"
    if kw == "uniqueItems":
        return f"{describe_value(inst)} is listed twice; expected each value once"
    if kw == "minLength":
        if node["minLength"] == 1:
            return "must not be empty"
        return f"expected at least {node['minLength']} characters, got {len(inst)}"
    if kw == "maxLength":
        return f"expected at most {node['maxLength']} characters, got {len(inst)}"
    if kw == "pattern":
        if node["pattern"] == _NAME["pattern"]:
            return f"{inst!r} contains '/'; expected a name without '/' ('/' separates plan and step in references)"
        return f"expected a string matching {node['pattern']!r}, got {describe_value(inst)}"
    if kw in ("minItems", "maxItems"):
        word = "at least" if kw == "minItems" else "at most"
        return f"expected {word} {node[kw]} items, got {len(inst)}"
    if kw == "false":
        return "no value is allowed here"
    return f"expected {describe_schema(node)}, got {describe_value(inst)}"
