"""Plans load rules (SPEC section 3). Plan problems (duplicate step ids, missing
deps, cycles, negative priority) are deliberately NOT load errors: intake
rejects just those calls and the rest runs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from interlock.core.convert import structure_catalog, structure_plans
from interlock.core.errors import LoadError
from interlock.core.model import OnFailure

ROOT = Path(__file__).parents[2]
CATALOG = structure_catalog(yaml.safe_load((ROOT / "examples/basic/catalog.yaml").read_text()), "c")
EXAMPLE = yaml.safe_load((ROOT / "examples/basic/plans.yaml").read_text())
FILE = "plans.yaml"


def step(**fields):
    base = {"id": "s", "tool": "fs.read_file", "args": {"path": "README"}, "confidence": 0.9}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def plan(*steps, **fields):
    base = {"plan_id": "p", "agent_id": "a", "steps": list(steps) or [step()]}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def doc(*plans):
    return {"schema_version": 1, "plans": list(plans) or [plan()]}


def problems(d, catalog=CATALOG):
    with pytest.raises(LoadError) as info:
        structure_plans(d, FILE, catalog)
    assert all(p.file == FILE for p in info.value.problems)
    return {p.pointer: p.message for p in info.value.problems}


def only(d, pointer, *words, catalog=CATALOG):
    found = problems(d, catalog)
    assert list(found) == [pointer], found
    for w in words:
        assert w in found[pointer], (w, found[pointer])


def test_example_loads_with_cross_plan_dependency():
    ps = structure_plans(copy.deepcopy(EXAMPLE), FILE, CATALOG)
    assert [p.plan_id for p in ps.plans] == ["ci-nightly", "release-7", "support-311"]
    assert {p.agent_id for p in ps.plans} == {"builder", "support-bot"}
    bump = ps.plans[1].steps[1]
    assert bump.after == ("read-version", "ci-nightly/tests")
    assert ps.plans[2].on_failure is OnFailure.KEEP
    assert ps.plans[2].steps[0].idempotency_key == "refund-pay_8Hq2x"


def test_schema_version_and_plans_are_required():
    found = problems({})
    assert set(found) == {"/schema_version", "/plans"}
    assert "missing required field 'plans'" in found["/plans"]


def test_plan_id_must_be_non_empty_without_slash():
    only(doc(plan(plan_id="")), "/plans/0/plan_id", "must not be empty")
    only(doc(plan(plan_id="a/b")), "/plans/0/plan_id", "contains '/'")


def test_plan_id_is_unique_in_the_file():
    only(doc(plan(), plan(plan_id="q"), plan()), "/plans/2/plan_id",
         "duplicate plan_id 'p'", "first used at /plans/0")


def test_agent_id_is_required_and_non_empty():
    only(doc(plan(agent_id="")), "/plans/0/agent_id", "must not be empty")
    only(doc(plan(agent_id=...)), "/plans/0/agent_id", "missing required field 'agent_id'")


def test_negative_priority_is_not_a_load_error():
    assert structure_plans(doc(plan(priority=-5)), FILE, CATALOG).plans[0].priority == -5


def test_priority_is_an_integer():
    only(doc(plan(priority=1.5)), "/plans/0/priority", "an integer")
    only(doc(plan(priority="5")), "/plans/0/priority", "write 5 without quotes")


def test_on_failure_is_rollback_or_keep_default_rollback():
    assert structure_plans(doc(plan()), FILE, CATALOG).plans[0].on_failure is OnFailure.ROLLBACK
    only(doc(plan(on_failure="abort")), "/plans/0/on_failure", "one of: rollback, keep")


def test_upstream_ids_are_optional_strings():
    p = structure_plans(doc(plan(phase21_plan_id="p21", phase22_validation_id="v22")), FILE, CATALOG).plans[0]
    assert (p.phase21_plan_id, p.phase22_validation_id) == ("p21", "v22")
    only(doc(plan(phase22_validation_id=22)), "/plans/0/phase22_validation_id", "a string or null")


def test_step_id_is_non_empty_without_slash():
    only(doc(plan(step(id=""))), "/plans/0/steps/0/id", "must not be empty")
    only(doc(plan(step(id="x/y"))), "/plans/0/steps/0/id", "contains '/'")


def test_step_tool_must_exist_in_the_catalog():
    only(doc(plan(step(), step(id="t", tool="fs.raed_file"))), "/plans/0/steps/1/tool",
         "unknown tool 'fs.raed_file'", "did you mean 'fs.read_file'?")


def test_args_are_validated_against_the_input_schema_with_deep_pointers():
    bad = step(tool="payments.refund", args={"payment_id": "nope", "amount_cents": 0, "memo": "x"})
    found = problems(doc(plan(bad)))
    assert set(found) == {"/plans/0/steps/0/args/payment_id", "/plans/0/steps/0/args/amount_cents",
                          "/plans/0/steps/0/args/memo"}
    assert "input_schema of tool 'payments.refund'" in found["/plans/0/steps/0/args/amount_cents"]
    assert "unknown argument 'memo'" in found["/plans/0/steps/0/args/memo"]


def test_missing_required_arg_points_at_the_arg():
    only(doc(plan(step(tool="fs.write_file", args={"path": "x"}))), "/plans/0/steps/0/args/content",
         "missing argument 'content'")


def test_args_must_be_a_mapping():
    only(doc(plan(step(args=["README"]))), "/plans/0/steps/0/args", "expected a mapping")


def test_confidence_is_required():
    only(doc(plan(step(confidence=...))), "/plans/0/steps/0/confidence", "missing required field 'confidence'")


@pytest.mark.parametrize("value, words", [
    ("0.9", "write 0.9 without quotes"), (1.01, "between 0 and 1"), (-0.1, "between 0 and 1"),
    (True, "a boolean is not a number"), (None, "got null"),
])
def test_confidence_is_a_number_in_unit_interval_never_coerced(value, words):
    only(doc(plan(step(confidence=value))), "/plans/0/steps/0/confidence", "a number between 0 and 1", words)


def test_confidence_nan_is_rejected():
    only(doc(plan(step(confidence=float("nan")))), "/plans/0/steps/0/confidence", "finite number")


def test_confidence_int_bounds_are_fine():
    s = structure_plans(doc(plan(step(confidence=1))), FILE, CATALOG).plans[0].steps[0]
    assert s.confidence == 1.0 and isinstance(s.confidence, float)


def test_after_is_a_list_of_strings():
    only(doc(plan(step(after="a"))), "/plans/0/steps/0/after", "a list of strings")
    only(doc(plan(step(after=["a", 2]))), "/plans/0/steps/0/after/1", "a string")


def test_idempotency_key_is_optional_but_not_empty():
    assert structure_plans(doc(plan(step())), FILE, CATALOG).plans[0].steps[0].idempotency_key is None
    only(doc(plan(step(idempotency_key=""))), "/plans/0/steps/0/idempotency_key", "must not be empty")


def test_plan_problems_are_not_load_errors():
    # duplicate step id, missing dependency, cycle: intake's business (SPEC: plan problems)
    d = doc(plan(step(id="a", after=["b"]), step(id="b", after=["a"]), step(id="a"),
                 step(id="c", after=["nope", "other/x"])))
    assert len(structure_plans(d, FILE, CATALOG).plans[0].steps) == 4


def test_without_a_catalog_only_the_file_itself_is_checked():
    d = doc(plan(step(tool="no.such.tool", args={"whatever": 1})))
    assert structure_plans(d, FILE, None).plans[0].steps[0].tool == "no.such.tool"
    only(doc(plan(step(confidence=2))), "/plans/0/steps/0/confidence", "between 0 and 1", catalog=None)


def test_unknown_step_key_suggests():
    only(doc(plan(step(confidance=0.5, confidence=0.5))), "/plans/0/steps/0/confidance",
         "did you mean 'confidence'?")


def test_all_problems_of_the_file_together():
    d = doc(plan(step(confidence="high"), step(id="t", tool="nope")), plan(plan_id="p", agent_id=""))
    assert set(problems(d)) == {"/plans/0/steps/0/confidence", "/plans/0/steps/1/tool",
                                "/plans/1/agent_id", "/plans/1/plan_id"}


def test_unusable_input_schema_ref_becomes_a_problem():
    cat = structure_catalog({"schema_version": 1, "tools": [
        {"name": "x", "risk": "low", "input_schema": {"$ref": "https://example.invalid/s.json"}}]}, "c")
    only(doc(plan(step(tool="x", args={}))), "/plans/0/steps/0/args", "cannot check args", catalog=cat)


def test_self_referencing_input_schema_becomes_a_problem():
    cat = structure_catalog({"schema_version": 1, "tools": [
        {"name": "x", "risk": "low", "input_schema": {"$ref": "#"}}]}, "c")
    only(doc(plan(step(tool="x", args={}))), "/plans/0/steps/0/args", "cannot check args", catalog=cat)
