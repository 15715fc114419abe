"""The one cattrs Converter of interlock, and the load-time rules of SPEC section 3.

Documents (already parsed from YAML/JSON by an adapter) become domain values in
three steps, and every problem of a document is reported together:

1. structure: JSON data only, the right version, then the generated JSON
   Schema (``interlock.core.schemas``): types (never coerced), ranges, allowed
   words, unknown keys with a "did you mean";
2. rules that need more than one field (duplicate names, rollback and
   conflict references, argument templates, input schemas, args against the
   tool's input schema, threshold ordering...), each applied only to parts
   whose structure is sound;
3. only when nothing is wrong: the private converter builds the attrs values.

Going out, :func:`unstructure` turns any model value or output record into
JSON-able data: enums become their value (``Mode`` its label), tuples lists,
``Risk`` keys their word.
"""

from __future__ import annotations

import enum
import functools
import json
import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import attrs
import cattrs
import jsonschema
from cattrs.errors import (
    BaseValidationError,
    ForbiddenExtraKeysError,
    IterableValidationNote,
)

from interlock.core import schemas
from interlock.core.errors import LoadError, Problem
from interlock.core.records import AnomalyRecord, ExecutionRecord, RollbackEvent, TransitionRecord
from interlock.core.model import (
    Catalog,
    Mode,
    PlanSet,
    Policy,
    Risk,
)
from interlock.core.schemas import describe_value, pointer, unknown_key_message

__all__ = [
    "structure_catalog", "structure_plans", "structure_policy", "structure", "unstructure",
]

T = TypeVar("T")

# --------------------------------------------------------------------------
# The converter (private; configured here and nowhere else)
# --------------------------------------------------------------------------

_conv = cattrs.Converter(forbid_extra_keys=True)


def _strict(kind: type, check: Callable[[Any], bool], make: Callable[[Any], Any]) -> None:
    """Structure hook that refuses instead of coercing ("0.9" is not a float)."""

    def hook(value: Any, _: Any) -> Any:
        if not check(value):
            raise TypeError(f"expected {kind.__name__}, got {describe_value(value)}")
        return make(value)

    _conv.register_structure_hook(kind, hook)


_strict(str, lambda v: isinstance(v, str), lambda v: v)
_strict(bool, lambda v: isinstance(v, bool), lambda v: v)
_strict(int, lambda v: isinstance(v, int) and not isinstance(v, bool), lambda v: v)
_strict(float, lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), float)

_MODE_LABELS = frozenset(m.label for m in Mode)


def _mode(value: Any, _: Any) -> Mode:
    if not (isinstance(value, str) and value in _MODE_LABELS):
        raise ValueError(f"expected one of: mock, dry_run, live, got {describe_value(value)}")
    return Mode.from_label(value)


_conv.register_structure_hook(Mode, _mode)
_SCALARS = (str, int, float, bool, type(None))


def _json_plain(v: Any) -> Any:
    t = type(v)
    if t in _SCALARS:
        return v
    if t is dict:
        return {k: _json_plain(x) for k, x in v.items()}
    if t is list or t is tuple:
        return [_json_plain(x) for x in v]
    return _conv.unstructure(v)  # anything else (an enum...) the converter's way


def _shallow(cls: type) -> Callable[[Any], dict[str, Any]]:
    """Records whose fields hold JSON values (str, numbers, None, dicts and lists or
    tuples of those): their unstructured form at a fraction of cattrs' generic cost
    (they are written once per transition and per execution)."""
    names = tuple(a.name for a in attrs.fields(cls))
    return lambda rec: {n: _json_plain(getattr(rec, n)) for n in names}


for _cls in (TransitionRecord, ExecutionRecord, RollbackEvent, AnomalyRecord):
    _conv.register_unstructure_hook(_cls, _shallow(_cls))

_conv.register_unstructure_hook(Mode, lambda m: m.label)
_conv.register_unstructure_hook(enum.Enum, lambda e: e.value)
# Tuples met at run time (inside ``Any`` fields) become lists like typed ones do.
_conv.register_unstructure_hook(tuple, lambda t: [_conv.unstructure(x) for x in t])
_conv.register_unstructure_hook(frozenset, lambda s: sorted(_conv.unstructure(x) for x in s))


def unstructure(obj: Any) -> Any:
    """JSON-able data for any model value or record (enums by value, tuples as lists)."""
    return _conv.unstructure(obj)


def structure(data: Any, cls: type[T], file: str = "<data>") -> T:
    """Build ``cls`` from unstructured data (internal round trips: stores, replays).

    No coercion and no unknown keys; failures become a :class:`LoadError` with
    JSON pointers. User documents go through the ``structure_*`` functions,
    which check the SPEC rules first.
    """
    try:
        return _conv.structure(data, cls)
    except (BaseValidationError, ForbiddenExtraKeysError, TypeError, ValueError, KeyError) as exc:
        raise LoadError(_cattrs_problems(exc, (), file) or [Problem(file, "", str(exc))]) from None


def _cattrs_problems(exc: BaseException, path: tuple[Any, ...], file: str) -> list[Problem]:
    if isinstance(exc, ForbiddenExtraKeysError):
        return [Problem(file, pointer((*path, k)), f"unknown key {k!r}") for k in sorted(exc.extra_fields)]
    if isinstance(exc, BaseValidationError):
        out: list[Problem] = []
        for sub in exc.exceptions:
            step = path
            for note in getattr(sub, "__notes__", ()):
                if isinstance(note, IterableValidationNote):
                    step = (*path, note.index)
                    break
                name = getattr(note, "name", None)
                if name is not None:
                    step = (*path, name)
                    break
            out.extend(_cattrs_problems(sub, step, file))
        return out
    if isinstance(exc, KeyError):  # the note already named the attribute
        missing = path if path and exc.args and path[-1] == exc.args[0] else (*path, *exc.args[:1])
        return [Problem(file, pointer(missing), "missing required field")]
    return [Problem(file, pointer(path), str(exc))]


# --------------------------------------------------------------------------
# Catalog
# --------------------------------------------------------------------------


def structure_catalog(doc: Any, file: str) -> Catalog:
    """A :class:`Catalog` from a parsed document, or a LoadError with every problem."""
    problems, go_on = _structural(doc, "catalog", file)
    if go_on:
        problems += _catalog_rules(doc, file)
    _raise_if(problems)
    return structure(doc, Catalog, file)


def _catalog_rules(doc: dict, file: str) -> list[Problem]:
    out: list[Problem] = []
    tools = [(i, t) for i, t in _items(doc.get("tools")) if isinstance(t, dict)]
    first_at: dict[str, int] = {}
    for i, t in tools:
        name = t.get("name")
        if not isinstance(name, str):
            continue
        if name in first_at:
            out.append(Problem(file, pointer(("tools", i, "name")),
                               f"duplicate tool name {name!r}; first defined at /tools/{first_at[name]} "
                               "(tool names must be unique)"))
        else:
            first_at[name] = i
    names = sorted(first_at)

    for i, t in tools:
        at = ("tools", i)
        rollback = t.get("rollback")
        if t.get("reversible") is True and rollback is None:
            out.append(Problem(file, pointer((*at, "rollback")),
                               "missing: reversible: true requires a rollback {tool, args} "
                               "(the compensating call that undoes this one)"))
        if rollback is not None and t.get("reversible", False) is False:
            out.append(Problem(file, pointer((*at, "rollback")),
                               "rollback given but reversible is not true; set reversible: true "
                               "or remove the rollback (only reversible tools are rolled back)"))
        if isinstance(rollback, dict) and isinstance(rollback.get("tool"), str) \
                and rollback["tool"] not in first_at:
            out.append(Problem(file, pointer((*at, "rollback", "tool")),
                               unknown_key_message(rollback["tool"], names, "tool", "in this catalog")))
        for k, other in _items(t.get("conflicts_with")):
            if isinstance(other, str) and other not in first_at:
                out.append(Problem(file, pointer((*at, "conflicts_with", k)),
                                   unknown_key_message(other, names, "tool", "in this catalog")))
        schema = t.get("input_schema")
        declared: list[str] | None = None
        if isinstance(schema, dict):
            schema_problems = _input_schema_problems(schema, file, (*at, "input_schema"))
            out += schema_problems
            props = schema.get("properties")
            declared = sorted(props) if isinstance(props, dict) else []
        out += _template_problems(t, declared, file, at)
    return out


@functools.cache
def _meta_validator() -> Any:
    """What ``check_schema`` uses, but reporting every error, not the best match."""
    cls = jsonschema.Draft202012Validator
    return cls(cls.META_SCHEMA, format_checker=cls.FORMAT_CHECKER)


def _input_schema_problems(schema: dict, file: str, at: tuple[Any, ...]) -> list[Problem]:
    found = _metaschema_errors(json.dumps(schema, sort_keys=True))
    return [Problem(file, pointer((*at, *path)), message) for path, message in found]


@functools.lru_cache(maxsize=512)
def _metaschema_errors(canonical: str) -> tuple[tuple[tuple[Any, ...], str], ...]:
    """(path, message) per metaschema error. Cached by content: checking one schema
    against the 2020-12 metaschema costs ~20 ms ($dynamicRef), and catalogs are
    reloaded with the same schemas again and again."""
    try:
        errors = list(_meta_validator().iter_errors(json.loads(canonical)))
    except Exception as exc:  # noqa: BLE001 - a hostile schema must become a problem, never a crash
        return (((), f"not a usable JSON Schema (draft 2020-12): {exc}"),)
    return tuple((tuple(err.absolute_path), f"not a valid JSON Schema (draft 2020-12): {err.message}")
                 for err in errors)


#: ``{name}`` placeholders in resource and rollback templates.
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def _template_problems(tool: dict, declared: list[str] | None, file: str,
                       at: tuple[Any, ...]) -> list[Problem]:
    """Every ``{name}`` must be an argument the input schema declares.

    Resource templates are expanded before the call runs, so they may not use
    ``{result.key}``; rollback args may (the result of the call being undone).
    """
    out: list[Problem] = []
    effects = tool.get("effects")
    if isinstance(effects, dict):
        for field in ("reads", "writes"):
            for k, text in _items(effects.get(field)):
                if isinstance(text, str):
                    out += _placeholders(text, declared, False, file, (*at, "effects", field, k))
    rollback = tool.get("rollback")
    if isinstance(rollback, dict) and isinstance(rollback.get("args"), dict):
        for path, text in _strings(rollback["args"], (*at, "rollback", "args")):
            out += _placeholders(text, declared, True, file, path)
    return out


def _placeholders(text: str, declared: list[str] | None, result_ok: bool, file: str,
                  path: tuple[Any, ...]) -> list[Problem]:
    out = []
    for m in _PLACEHOLDER.finditer(text):
        name = m.group(1)
        where = pointer(path)
        if name == "result" or name.startswith("result."):
            if not result_ok:
                out.append(Problem(file, where,
                                   f"template {m.group(0)} refers to the result, which is unknown before "
                                   "the call runs; a resource template may only name args"))
            continue
        if not name:
            out.append(Problem(file, where, "empty placeholder {}; expected {argument_name}"))
        elif declared is not None and name not in declared:
            msg = unknown_key_message(name, declared, "argument")
            out.append(Problem(file, where,
                               f"template {m.group(0)} names an argument that input_schema.properties "
                               f"does not declare: {msg}" if declared else
                               f"template {m.group(0)} names an argument, but input_schema declares no "
                               "properties; declare it in input_schema.properties"))
    return out


# --------------------------------------------------------------------------
# Plans
# --------------------------------------------------------------------------


def structure_plans(doc: Any, file: str, catalog: Catalog | None) -> PlanSet:
    """A :class:`PlanSet`, checked against ``catalog`` (tools exist, args fit their
    input schema). ``catalog=None`` checks the file on its own (the catalog
    failed to load). Duplicate step ids, missing deps and cycles are plan
    problems for intake, not load errors; so is a negative priority."""
    problems, go_on = _structural(doc, "plans", file)
    if go_on:
        problems += _plan_rules(doc, file, catalog)
    _raise_if(problems)
    return structure(doc, PlanSet, file)


def _plan_rules(doc: dict, file: str, catalog: Catalog | None) -> list[Problem]:
    out: list[Problem] = []
    first_at: dict[str, int] = {}
    validators: dict[str, Any] = {}
    names = sorted(catalog.by_name) if catalog is not None else []
    for i, plan in _items(doc.get("plans")):
        if not isinstance(plan, dict):
            continue
        pid = plan.get("plan_id")
        if isinstance(pid, str):
            if pid in first_at:
                out.append(Problem(file, pointer(("plans", i, "plan_id")),
                                   f"duplicate plan_id {pid!r}; first used at /plans/{first_at[pid]} "
                                   "(plan ids must be unique in the file)"))
            else:
                first_at[pid] = i
        if catalog is None:
            continue
        for j, step in _items(plan.get("steps")):
            if not isinstance(step, dict) or not isinstance(step.get("tool"), str):
                continue
            at = ("plans", i, "steps", j)
            contract = catalog.get(step["tool"])
            if contract is None:
                out.append(Problem(file, pointer((*at, "tool")),
                                   unknown_key_message(step["tool"], names, "tool", "in the catalog")))
                continue
            args = step.get("args", {})
            if contract.input_schema is not None and isinstance(args, dict):
                found = _args_problems(contract.name, contract.input_schema, args, validators,
                                       file, (*at, "args"))
                if found and "args" not in step:  # point at the key that is missing, with what it needs
                    found = [Problem(file, pointer((*at, "args")),
                                     f"missing args; the input_schema of tool {contract.name!r} does not "
                                     f"accept none ({'; '.join(p.message for p in found)})")]
                out += found
    return out


def _args_problems(tool: str, schema: dict, args: dict, cache: dict[str, Any], file: str,
                   at: tuple[Any, ...]) -> list[Problem]:
    if tool not in cache:
        try:
            cache[tool] = schemas.Checker(schema)
        except schemas.Unsupported:  # keywords beyond the compiled subset: the reference implementation
            cache[tool] = jsonschema.Draft202012Validator(schema)
    check = cache[tool]
    try:
        if isinstance(check, schemas.Checker):
            return [_arg_problem(tool, e, file, at) for e in check.errors(args)]
        errors = sorted(check.iter_errors(args), key=lambda e: list(map(str, e.absolute_path)))
    except Exception as exc:  # noqa: BLE001 - the schema is user data: unresolvable $ref, recursion...
        return [Problem(file, pointer(at),
                        f"cannot check args: the input_schema of tool {tool!r} is unusable ({exc!r})")]
    return [Problem(file, pointer((*at, *err.absolute_path)),
                    f"args do not match the input_schema of tool {tool!r}: {err.message}") for err in errors]


def _arg_problem(tool: str, e: schemas.SchemaError, file: str, at: tuple[Any, ...]) -> Problem:
    if e.keyword == "required":
        return Problem(file, pointer((*at, *e.where)),
                       f"missing argument {e.detail!r} required by the input_schema of tool {tool!r}")
    if e.keyword == "additionalProperties":
        known = sorted(e.schema.get("properties", {}))
        what = "argument" if not e.path[:-1] else "key"
        return Problem(file, pointer((*at, *e.path)),
                       unknown_key_message(e.detail, known, what, f"for tool {tool!r}"))
    return Problem(file, pointer((*at, *e.path)), f"{e.message()} (input_schema of tool {tool!r})")


# --------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------


def structure_policy(doc: Any, file: str, catalog: Catalog | None = None) -> Policy:
    """A :class:`Policy`: the document merged over the safe defaults.

    Mappings merge key by key (``thresholds: {high: {live: 0.95}}`` keeps
    high's default dry_run), lists replace. With a ``catalog``, per-tool
    overrides must name its tools (a typo would silently not apply).
    """
    problems, go_on = _structural(doc, "policy", file)
    if not go_on:
        _raise_if(problems)
    bad = {p.pointer for p in problems}

    def sound(section: str) -> bool:
        return not any(ptr == section or ptr.startswith(section + "/") or section.startswith(ptr + "/")
                       for ptr in bad)

    merged = _merge(unstructure(Policy()), doc)
    if catalog is not None and sound("/tools"):
        names = sorted(catalog.by_name)
        for name in doc.get("tools", {}):
            if name not in catalog.by_name:
                problems.append(Problem(file, pointer(("tools", name)),
                                        unknown_key_message(name, names, "tool", "in the catalog")))
    if sound("/tools"):
        for name, o in merged["tools"].items():
            if o.get("dry_run") is not None and o.get("live") is not None and o["dry_run"] > o["live"]:
                problems.append(Problem(file, pointer(("tools", name)),
                                        f"dry_run {o['dry_run']} is above live {o['live']}; expected "
                                        "dry_run <= live (LIVE is the more powerful mode)"))
    problems += _threshold_problems(merged.get("thresholds"), doc.get("thresholds"), file, sound)
    if sound("/approval/required_for"):
        required = merged["approval"]["required_for"]
        for risk in Risk:
            higher = [r.value for r in Risk if r > risk and r.value not in required]
            if risk.value in required and higher:
                problems.append(Problem(
                    file, "/approval/required_for",
                    f"lists {risk.value} but not {', '.join(higher)}; expected an upward closed set "
                    "(if a risk needs approval, every higher risk does too), so that raising a call's "
                    "risk never removes an approval (invariant I3)"))
                break
    if sound("/health/weights"):
        weights = merged["health"]["weights"]
        if sum(weights.values()) <= 0:
            problems.append(Problem(file, "/health/weights",
                                    "weights sum to 0; expected at least one positive weight "
                                    "(the health score is their weighted average)"))
    _raise_if(problems)
    return structure(merged, Policy, file)


def _threshold_problems(merged: Any, given: Any, file: str, sound: Callable[[str], bool]) -> list[Problem]:
    """dry_run <= live per risk, and both non-decreasing low -> medium -> high (I3:
    raising a call's risk must never give it a more powerful mode). Values the
    schema check refused are skipped here: one mistake, one problem."""
    if not isinstance(merged, dict):
        return []
    given = given if isinstance(given, dict) else {}

    def value(risk: str, mode: str) -> float | None:
        if not sound(f"/thresholds/{risk}/{mode}"):
            return None
        v = merged.get(risk, {}).get(mode) if isinstance(merged.get(risk), dict) else None
        return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    def shown(risk: str, mode: str) -> str:
        mine = isinstance(given.get(risk), dict) and mode in given[risk]
        return f"{value(risk, mode)}{'' if mine else ', the default'}"

    out = []
    for risk in (r.value for r in Risk):
        dry, live = value(risk, "dry_run"), value(risk, "live")
        if dry is not None and live is not None and dry > live:
            out.append(Problem(file, pointer(("thresholds", risk)),
                               f"dry_run ({shown(risk, 'dry_run')}) is above live ({shown(risk, 'live')}); "
                               "expected dry_run <= live, since LIVE is the more powerful mode"))
    order = [r.value for r in Risk]
    for lower, higher in zip(order, order[1:]):
        for mode in ("dry_run", "live"):
            lo, hi = value(lower, mode), value(higher, mode)
            if lo is not None and hi is not None and lo > hi:
                out.append(Problem(
                    file, pointer(("thresholds", higher, mode)),
                    f"{mode} threshold of {higher} ({shown(higher, mode)}) is below that of {lower} "
                    f"({shown(lower, mode)}); expected thresholds that do not decrease from low to "
                    "medium to high, so that raising a call's risk never gives it a more powerful mode "
                    "(invariant I3)"))
    return out


def _merge(base: Any, over: Any) -> Any:
    """``over`` merged into ``base``: mappings key by key, everything else replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base[k], v) if k in base else v
        return out
    return over


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _structural(doc: Any, kind: str, file: str) -> tuple[list[Problem], bool]:
    """Schema problems of ``doc``, and whether the SPEC rules can run at all."""
    early = schemas.prelude_problems(doc, file)
    if early:
        return early, False
    return schemas.schema_problems(doc, kind, file), True


def _raise_if(problems: list[Problem]) -> None:
    if problems:
        raise LoadError(sorted(_dedupe(problems), key=_position))


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[Problem] = set()
    out = []
    for p in problems:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def _position(p: Problem) -> tuple:
    """Document order: numeric indexes compare as numbers."""
    tokens = p.pointer.split("/")[1:] if p.pointer else []
    return tuple((0, int(t), "") if _INDEX.fullmatch(t) else (1, 0, t) for t in tokens)


_INDEX = re.compile(r"[0-9]+")


def _items(value: Any) -> Iterator[tuple[int, Any]]:
    return enumerate(value) if isinstance(value, list) else iter(())


def _strings(value: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every string inside ``value`` with its path (depth already bounded by the schema check)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, (*path, i))
