"""The input JSON Schemas cannot drift: they are generated from the attrs model,
the committed files equal the generated ones, every attrs field appears with
its type and default, and the examples pass a plain draft 2020-12 validator.
Also: the converter's round trips and its output shapes."""

from __future__ import annotations

import enum
import json
import typing
from pathlib import Path

import attrs
import jsonschema
import pytest
import yaml

from interlock.core import model
from interlock.core.convert import (
    structure,
    structure_catalog,
    structure_plans,
    structure_policy,
    unstructure,
)
from interlock.core.errors import LoadError
from interlock.core.records import ConflictRecord, ExecutionRecord
from interlock.core.schemas import input_schemas

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples" / "basic"
ROOTS = {"catalog.schema.json": model.Catalog, "plans.schema.json": model.PlanSet,
         "policy.schema.json": model.Policy}


def example(name):
    return yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())


@pytest.mark.parametrize("name", sorted(ROOTS))
def test_committed_schema_files_equal_the_generated_ones(name):
    committed = (ROOT / "specs" / "schemas" / name).read_text()
    assert committed == json.dumps(input_schemas()[name], indent=2, sort_keys=True) + "\n", (
        f"specs/schemas/{name} is stale; regenerate it from interlock.core.schemas.input_schemas()")


@pytest.mark.parametrize("name", sorted(ROOTS))
def test_schemas_are_valid_draft_2020_12(name):
    schema = input_schemas()[name]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name, kind", [("catalog.schema.json", "catalog"), ("plans.schema.json", "plans"),
                                        ("policy.schema.json", "policy")])
def test_examples_pass_a_plain_validator(name, kind):
    jsonschema.Draft202012Validator(input_schemas()[name]).validate(example(kind))


_JSON_TYPE = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _expected_types(tp) -> set[str] | None:
    """JSON types for an annotation, written independently of the generator."""
    if typing.get_origin(tp) in (typing.Union, __import__("types").UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _expected_types(inner[0]) | {"null"}
    if tp is typing.Any:
        return None
    if tp in _JSON_TYPE:
        return {_JSON_TYPE[tp]}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"string"}
    if attrs.has(tp) or typing.get_origin(tp) is dict:
        return {"object"}
    if typing.get_origin(tp) is tuple:
        return {"array"}
    raise AssertionError(f"unexpected annotation {tp!r}")


def _classes(root):
    seen, todo = [], [root]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.append(cls)
        for tp in typing.get_type_hints(cls).values():
            for t in (tp, *typing.get_args(tp), *(a for x in typing.get_args(tp) for a in typing.get_args(x))):
                if attrs.has(t):
                    todo.append(t)
    return seen


@pytest.mark.parametrize("name", sorted(ROOTS))
def test_every_attrs_field_is_in_the_schema_with_type_and_default(name):
    schema = input_schemas()[name]
    for cls in _classes(ROOTS[name]):
        body = schema if cls is ROOTS[name] else schema["$defs"][cls.__name__]
        fields = {f.name: f for f in attrs.fields(cls) if f.init}
        assert set(body["properties"]) == set(fields), cls
        assert body["additionalProperties"] is False
        hints = typing.get_type_hints(cls)
        for fname, f in fields.items():
            prop = body["properties"][fname]
            want = _expected_types(hints[fname])
            got = prop.get("type")
            got = None if got is None else ({got} if isinstance(got, str) else set(got))
            assert got == want, (cls.__name__, fname, got, want)
            enum_tp = hints[fname]
            if isinstance(enum_tp, type) and issubclass(enum_tp, enum.Enum):
                assert set(prop["enum"]) <= {m.value for m in enum_tp}, (cls.__name__, fname)
            if "default" in prop:
                default = f.default.factory() if isinstance(f.default, attrs.Factory) else f.default
                assert prop["default"] == unstructure(default), (cls.__name__, fname)
            elif f.default is not attrs.NOTHING:
                assert fname in body.get("required", []), (cls.__name__, fname)


def test_required_fields():
    s = input_schemas()
    assert set(s["catalog.schema.json"]["required"]) == {"schema_version"}
    assert set(s["catalog.schema.json"]["$defs"]["ToolContract"]["required"]) == {"name", "risk"}
    assert set(s["plans.schema.json"]["required"]) == {"schema_version", "plans"}
    assert set(s["plans.schema.json"]["$defs"]["Step"]["required"]) == {"id", "tool", "confidence"}
    assert "required" not in s["policy.schema.json"]
    assert all("required" not in d for d in s["policy.schema.json"]["$defs"].values())


# -- round trips ------------------------------------------------------------------


def test_examples_round_trip_through_unstructure_and_structure():
    cat = structure_catalog(example("catalog"), "c")
    plans = structure_plans(example("plans"), "p", cat)
    policy = structure_policy(example("policy"), "y", cat)
    for value in (cat, plans, policy):
        data = json.loads(json.dumps(unstructure(value)))
        assert structure(data, type(value)) == value
    assert structure_catalog(json.loads(json.dumps(unstructure(cat))), "c") == cat
    assert structure_plans(json.loads(json.dumps(unstructure(plans))), "p", cat) == plans
    assert structure_policy(json.loads(json.dumps(unstructure(policy))), "y", cat) == policy


def test_unstructured_values_are_plain_json():
    data = unstructure(model.Policy())
    assert data["thresholds"]["high"] == {"dry_run": 0.5, "live": 0.9}
    assert data["approval"]["required_for"] == ["high"]
    assert data["lock_mode"] == "mock_only" and data["conflicts"]["capacity"] == "serialize"
    assert unstructure(model.Mode.DRY_RUN) == "dry_run" and unstructure(model.Mode.LIVE) == "live"
    assert unstructure({model.Risk.LOW: (1, model.Mode.MOCK)}) == {"low": [1, "mock"]}
    assert "by_name" not in unstructure(model.Catalog())


def test_records_unstructure_to_json():
    rec = ExecutionRecord(
        call_id="p/s", plan_id="p", agent_id="a", tool="t", mode=model.Mode.LIVE.label, risk="high",
        confidence=0.9, attempt=1, start=0.0, end=1.0, duration_ms=1000.0, outcome="succeeded",
        error=None, result={"rows": (1, 2)}, decision={"mode": model.Mode.DRY_RUN, "risk": model.Risk.HIGH},
        idempotency_key="k")
    data = unstructure(rec)
    assert data["result"] == {"rows": [1, 2]} and data["decision"] == {"mode": "dry_run", "risk": "high"}
    json.dumps(data)
    conflict = unstructure(ConflictRecord(id="c1", type="write_write", calls=("a/x", "b/y"), resource="file:x",
                                          strategy="serialize", outcome="ordered"))
    assert conflict["calls"] == ["a/x", "b/y"]


def test_structure_refuses_coercion_with_pointers():
    with pytest.raises(LoadError) as info:
        structure({"schema_version": "1", "tools": [{"name": 1, "x": 2}]}, model.Catalog)
    assert {(p.pointer, p.message.split(";")[0]) for p in info.value.problems} == {
        ("/schema_version", "expected int, got the string '1'"),
        ("/tools/0/name", "expected str, got the number 1"),
        ("/tools/0/risk", "missing required field"),
        ("/tools/0/x", "unknown key 'x'"),
    }
    with pytest.raises(LoadError):
        structure({"dry_run": True, "live": 1}, model.Threshold)
    assert structure({"dry_run": 0, "live": 1}, model.Threshold) == model.Threshold(0.0, 1.0)


def test_mode_is_written_and_read_by_its_label():
    from interlock.core.commands import Execute

    cmd = Execute(call_id="p/s", tool="t", args={"a": [1]}, mode=model.Mode.DRY_RUN, attempt=1, timeout_s=3.0)
    data = unstructure(cmd)
    assert data["mode"] == "dry_run"
    assert structure(data, Execute) == cmd
    for bad in (1, "DRY_RUN", "dry-run"):
        with pytest.raises(LoadError) as info:
            structure({**data, "mode": bad}, Execute)
        assert [p.pointer for p in info.value.problems] == ["/mode"]


@pytest.mark.parametrize("schema", [
    {"required": "path"}, {"properties": []}, {"minLength": -1}, {"items": [{}]}, {"type": 3},
    {"anyOf": [{}]}, {"$ref": "#"}, {"pattern": "(["},
])
def test_checker_leaves_what_it_does_not_implement_to_jsonschema(schema):
    from interlock.core.schemas import Checker, Unsupported

    with pytest.raises(Unsupported):
        Checker(schema)


def test_args_with_a_schema_beyond_the_subset_use_jsonschema():
    cat = structure_catalog({"schema_version": 1, "tools": [{"name": "x", "risk": "low", "input_schema": {
        "type": "object", "properties": {"n": {"anyOf": [{"type": "integer"}, {"type": "null"}]}}}}]}, "c")
    ok = {"schema_version": 1, "plans": [{"plan_id": "p", "agent_id": "a", "steps": [
        {"id": "s", "tool": "x", "args": {"n": None}, "confidence": 0.5}]}]}
    assert structure_plans(ok, "p", cat).plans[0].steps[0].args == {"n": None}
    ok["plans"][0]["steps"][0]["args"] = {"n": "3"}
    with pytest.raises(LoadError) as info:
        structure_plans(ok, "p", cat)
    (p,) = info.value.problems
    assert p.pointer == "/plans/0/steps/0/args/n" and "input_schema of tool 'x'" in p.message
