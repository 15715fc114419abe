"""Catalog load rules (SPEC section 3): one test per rule, each asserting the
file, the JSON pointer and what the message says was expected."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from interlock.core.convert import structure_catalog
from interlock.core.errors import LoadError
from interlock.core.model import Risk, RollbackSpec

EXAMPLE = yaml.safe_load((Path(__file__).parents[2] / "examples/basic/catalog.yaml").read_text())
FILE = "cat.yaml"


def tool(**fields):
    base = {"name": "t", "risk": "low"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def problems(doc):
    with pytest.raises(LoadError) as info:
        structure_catalog(doc, FILE)
    assert all(p.file == FILE for p in info.value.problems)
    return {p.pointer: p.message for p in info.value.problems}


def only(doc, pointer, *words):
    found = problems(doc)
    assert list(found) == [pointer], found
    for w in words:
        assert w in found[pointer], (w, found[pointer])


def cat(*tools):
    return {"schema_version": 1, "tools": list(tools)}


def test_example_loads():
    c = structure_catalog(copy.deepcopy(EXAMPLE), FILE)
    assert len(c.tools) == 6
    assert {t.risk for t in c.tools} == set(Risk)
    w = c.get("fs.write_file")
    assert w.reversible and w.rollback == RollbackSpec(
        tool="fs.restore_file", args={"path": "{path}", "backup": "{result.backup}"})
    assert c.get("payments.refund").reversible is False


def test_schema_version_is_required():
    only({"tools": []}, "/schema_version", "missing required field", "1")


@pytest.mark.parametrize("version", [0, 2, 17])
def test_other_schema_version_is_unsupported_and_stops(version):
    # the unknown key would be noise for a file of another version
    only({"schema_version": version, "tools": [], "whatever": 1}, "/schema_version",
         f"unsupported schema_version {version}; this interlock reads 1")


@pytest.mark.parametrize("version", ["1", 1.0, True])
def test_schema_version_must_be_the_integer_1(version):
    only({"schema_version": version, "tools": []}, "/schema_version", "expected schema_version 1")


def test_tools_must_be_a_list():
    only({"schema_version": 1, "tools": {"a": {}}}, "/tools", "expected a list", "got a mapping")


def test_name_must_not_be_empty():
    only(cat(tool(name="")), "/tools/0/name", "must not be empty")


def test_name_must_not_contain_slash():
    only(cat(tool(name="fs/write")), "/tools/0/name", "contains '/'")


def test_duplicate_names_are_reported_at_the_second():
    only(cat(tool(name="a"), tool(name="b"), tool(name="a")), "/tools/2/name",
         "duplicate tool name 'a'", "first defined at /tools/0")


def test_risk_is_required():
    only(cat(tool(risk=...)), "/tools/0/risk", "missing required field 'risk'", "low, medium, high")


def test_risk_must_be_known():
    only(cat(tool(risk="extreme")), "/tools/0/risk", "one of: low, medium, high", "'extreme'")


def test_reversible_requires_rollback():
    only(cat(tool(reversible=True)), "/tools/0/rollback", "reversible: true requires a rollback")


def test_rollback_with_reversible_false_is_an_error():
    only(cat(tool(name="a", rollback={"tool": "a"})), "/tools/0/rollback", "reversible is not true")


def test_rollback_tool_must_exist():
    only(cat(tool(name="w", reversible=True, rollback={"tool": "fs.restor"}), tool(name="fs.restore")),
         "/tools/0/rollback/tool", "unknown tool 'fs.restor'", "did you mean 'fs.restore'?")


def test_conflicts_with_names_must_exist():
    only(cat(tool(name="a", conflicts_with=["a", "bb"]), tool(name="b")),
         "/tools/0/conflicts_with/1", "unknown tool 'bb'", "did you mean 'b'?")


SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}}}


def test_effect_template_must_name_a_declared_arg():
    only(cat(tool(input_schema=SCHEMA, effects={"reads": ["file:{path}"], "writes": ["file:{pth}"]})),
         "/tools/0/effects/writes/0", "{pth}", "did you mean 'path'?")


def test_effect_template_is_not_checked_without_input_schema():
    c = structure_catalog(cat(tool(effects={"writes": ["file:{anything}"]})), FILE)
    assert c.tools[0].effects.writes == ("file:{anything}",)


def test_effect_template_cannot_use_the_result():
    only(cat(tool(input_schema=SCHEMA, effects={"writes": ["file:{result.path}"]})),
         "/tools/0/effects/writes/0", "unknown before the call runs")


def test_effect_template_with_input_schema_without_properties():
    only(cat(tool(input_schema={"type": "object"}, effects={"writes": ["file:{path}"]})),
         "/tools/0/effects/writes/0", "declares no properties")


def test_rollback_args_templates_must_name_declared_args_or_the_result():
    doc = cat(
        tool(name="w", reversible=True, input_schema=SCHEMA,
             rollback={"tool": "r", "args": {"path": "{path}", "backup": "{result.backup}",
                                             "nested": [{"x": "{paht}"}]}}),
        tool(name="r"),
    )
    only(doc, "/tools/0/rollback/args/nested/0/x", "{paht}", "did you mean 'path'?")


def test_input_schema_must_be_a_valid_json_schema():
    only(cat(tool(input_schema={"type": "strin"})), "/tools/0/input_schema/type",
         "not a valid JSON Schema (draft 2020-12)")
    only(cat(tool(input_schema={"properties": {"p": {"pattern": "(["}}})),
         "/tools/0/input_schema/properties/p/pattern", "not a valid JSON Schema")


def test_input_schema_must_be_a_mapping():
    only(cat(tool(input_schema=[1])), "/tools/0/input_schema", "a mapping or null")


@pytest.mark.parametrize("value, words", [(0, ">= 1"), (1.5, "an integer"), ("2", "without quotes")])
def test_max_concurrency_is_an_integer_at_least_1(value, words):
    only(cat(tool(max_concurrency=value)), "/tools/0/max_concurrency", "expected an integer >= 1 or null", words)


def test_max_concurrency_may_be_null():
    assert structure_catalog(cat(tool(max_concurrency=None)), FILE).tools[0].max_concurrency is None


@pytest.mark.parametrize("value", [0, -1, "30", True])
def test_timeout_must_be_a_positive_number(value):
    only(cat(tool(timeout_s=value)), "/tools/0/timeout_s", "a number greater than 0")


def test_timeout_accepts_an_int_as_a_float():
    t = structure_catalog(cat(tool(timeout_s=5)), FILE).tools[0]
    assert t.timeout_s == 5.0 and isinstance(t.timeout_s, float)


def test_a_boolean_is_never_a_number():
    only(cat(tool(timeout_s=True)), "/tools/0/timeout_s", "a boolean is not a number")


@pytest.mark.parametrize("value", [-1, 2.0, "2"])
def test_retries_is_a_non_negative_integer(value):
    only(cat(tool(retries=value)), "/tools/0/retries", "an integer >= 0")


def test_description_is_a_string():
    only(cat(tool(description=3)), "/tools/0/description", "expected a string", "the number 3")


def test_mock_result_is_any_json_value():
    for value in (None, 1, "x", [1, {"a": [True]}], {"k": {"n": 1.5}}):
        assert structure_catalog(cat(tool(mock_result=value)), FILE).tools[0].mock_result == value


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_rejected_anywhere(bad):
    only(cat(tool(mock_result={"x": [bad]})), "/tools/0/mock_result/x/0", "expected a finite number")


def test_booleans_are_not_coerced():
    only(cat(tool(reversible="true")), "/tools/0/reversible", "true or false", "write true without quotes")


def test_unknown_key_suggests_the_close_one():
    only(cat(tool(riks="low", risk="low")), "/tools/0/riks", "unknown key 'riks'", "did you mean 'risk'?")


def test_unknown_top_level_key():
    only({"schema_version": 1, "tools": [], "tool": []}, "/tool", "did you mean 'tools'?")


def test_non_string_keys_are_rejected():
    only({"schema_version": 1, "tools": [], 3: "x"}, "/3", "is not a string")


def test_several_problems_are_reported_together_in_document_order():
    doc = cat(tool(name="a", risk="huge"), tool(name="a", retries=-1, extra=1))
    with pytest.raises(LoadError) as info:
        structure_catalog(doc, FILE)
    assert [p.pointer for p in info.value.problems] == [
        "/tools/0/risk", "/tools/1/extra", "/tools/1/name", "/tools/1/retries"]
    assert str(info.value).count(FILE) == 4


def test_not_json_data_is_rejected():
    import datetime

    only(cat(tool(mock_result=datetime.date(2024, 1, 1))), "/tools/0/mock_result", "expected JSON data")
    only(cat(tool(mock_result=(1, 2))), "/tools/0/mock_result", "tuple")


def test_recursive_structure_is_rejected():
    loop: list = []
    loop.append(loop)
    only(cat(tool(mock_result=loop)), "/tools/0/mock_result/0", "recursive structure")


def test_deep_nesting_is_rejected_before_anything_recurses():
    deep: object = 1
    for _ in range(5000):
        deep = [deep]
    found = problems(cat(tool(mock_result=deep)))
    assert len(found) == 1 and "nested more than" in next(iter(found.values()))


def test_top_level_must_be_a_mapping():
    only([1], "", "expected a mapping at the top level", "a list")


def test_one_mistake_one_problem_for_a_mistyped_reversible():
    only(cat(tool(name="a", reversible="yes", rollback={"tool": "a"})), "/tools/0/reversible", "true or false")
