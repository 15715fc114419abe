"""Plan intake: call ids, references, plan problems (SPEC section 3) and their records."""

from __future__ import annotations

import hashlib

from interlock.core.audit import canonical_json
from interlock.core.intake import default_idempotency_key, intake
from interlock.core.model import (
    Catalog, Effects, Plan, PlanSet, Policy, Risk, RollbackSpec, Step, ToolContract, ToolOverride,
)


def tool(name, reads=(), writes=(), reversible=True):
    return ToolContract(name=name, risk=Risk.LOW, reversible=reversible,
                        rollback=RollbackSpec(name) if reversible else None,
                        effects=Effects(tuple(reads), tuple(writes)))


CATALOG = Catalog(tools=(
    tool("noop"),
    tool("w", writes=["file:{path}"]),
    tool("tag", writes=["tag:{{{name}}}:{n}"]),
    tool("cfg", writes=["cfg:{target.path}"]),
    tool("danger"),
))


def step(id, tool="noop", after=(), key=None, **args):
    return Step(id=id, tool=tool, confidence=0.9, args=args, after=tuple(after), idempotency_key=key)


def plan(pid, *steps, priority=0):
    return Plan(plan_id=pid, agent_id="ag", steps=tuple(steps), priority=priority)


def run(*plans, policy=None, catalog=CATALOG):
    return intake(PlanSet(plans=tuple(plans)), catalog, policy or Policy())


def ids(res):
    return [c.call_id for c in res.calls]


def deps_records(res):
    return [c for c in res.conflicts if c.type == "dependency"]


# --------------------------------------------------------------------- ids


def test_calls_in_submission_order_with_seq_and_plan_fields():
    res = run(plan("a", step("x"), step("y")), plan("b", step("x")))
    assert ids(res) == ["a/x", "a/y", "b/x"]
    assert [c.seq for c in res.calls] == [0, 1, 2]
    c = res.calls[2]
    assert (c.plan_id, c.step_id, c.agent_id, c.priority, c.tool) == ("b", "x", "ag", 0, "noop")
    assert res.rejected == {} and res.conflicts == ()


def test_duplicate_step_id_first_keeps_id_later_ones_numbered_and_rejected():
    res = run(plan("p", step("s"), step("s"), step("t", after=["s"]), step("s")))
    assert ids(res) == ["p/s", "p/s#2", "p/t", "p/s#3"]
    assert res.rejected == {"p/s#2": "duplicate step id 's' in plan 'p'",
                            "p/s#3": "duplicate step id 's' in plan 'p'"}
    assert res.calls[2].deps == ("p/s",)  # references resolve to the first


def test_generated_suffix_never_takes_an_id_a_step_really_has():
    res = run(plan("p", step("s"), step("s#2"), step("s")))
    assert ids(res) == ["p/s", "p/s#2", "p/s#3"]
    assert list(res.rejected) == ["p/s#3"]


def test_duplicate_plan_id_rejects_the_repeat():
    res = run(plan("p", step("s")), plan("p", step("s"), step("t")))
    assert ids(res) == ["p/s", "p/s#2", "p/t#2"]
    assert res.rejected["p/s#2"] == "duplicate plan id 'p': plan #2 in the file repeats plan #1"
    assert set(res.rejected) == {"p/s#2", "p/t#2"}


# --------------------------------------------------------------- references


def test_cross_plan_dependencies_resolve_both_ways():
    res = run(plan("a", step("x", after=["b/y"])), plan("b", step("y"), step("z", after=["a/x", "y"])))
    by = {c.call_id: c for c in res.calls}
    assert by["a/x"].deps == ("b/y",) and by["b/z"].deps == ("a/x", "b/y")
    assert res.rejected == {}


def test_plan_ids_containing_a_slash_resolve():
    res = run(plan("team/rel", step("build")), plan("q", step("ship", after=["team/rel/build"])))
    assert res.calls[1].deps == ("team/rel/build",) and res.rejected == {}


def test_repeated_reference_is_one_dependency():
    res = run(plan("p", step("a"), step("b", after=["a", "p/a"])))
    assert res.calls[1].deps == ("p/a",)


def test_missing_step_and_unknown_plan_are_rejected_and_recorded():
    res = run(plan("p", step("a", after=["nope"]), step("b", after=["q/t"]), step("c", after=["p/zz"])))
    assert res.rejected == {
        "p/a": "plan p step a: dependency 'p/nope' does not exist",
        "p/b": "plan p step b: dependency 'q/t' does not exist",
        "p/c": "plan p step c: dependency 'p/zz' does not exist",
    }
    recs = deps_records(res)
    assert [(r.resource, r.calls, r.outcome, r.strategy) for r in recs] == [
        ("call:p/nope", ("p/a",), "rejected", "escalate"),
        ("call:q/t", ("p/b",), "rejected", "escalate"),
        ("call:p/zz", ("p/c",), "rejected", "escalate"),
    ]
    assert res.escalations == ()


def test_calls_naming_the_same_missing_dependency_share_one_record():
    res = run(plan("p", step("a", after=["q/t"]), step("b", after=["q/t"])))
    (rec,) = deps_records(res)
    assert rec.calls == ("p/a", "p/b") and rec.detail == {"missing": "q/t"}


# ------------------------------------------------------------------ cycles


def test_two_cycle_rejects_both_and_names_the_cycle():
    res = run(plan("p", step("a", after=["b"]), step("b", after=["a"])))
    assert res.rejected == {"p/a": "dependency cycle: p/a -> p/b -> p/a",
                            "p/b": "dependency cycle: p/a -> p/b -> p/a"}
    (rec,) = deps_records(res)
    assert (rec.resource, rec.calls, rec.outcome) == ("cycle:p/a", ("p/a", "p/b"), "rejected")
    assert rec.detail == {"cycle": ["p/a", "p/b", "p/a"]}


def test_self_dependency_is_a_cycle():
    res = run(plan("p", step("a", after=["a"])))
    assert res.rejected == {"p/a": "dependency cycle: p/a -> p/a"}


def test_cross_plan_three_cycle_each_waits_for_the_next():
    res = run(plan("p", step("a", after=["q/b"])), plan("q", step("b", after=["r/c"])),
              plan("r", step("c", after=["p/a"])))
    assert set(res.rejected.values()) == {"dependency cycle: p/a -> q/b -> r/c -> p/a"}


def test_member_off_the_named_cycle_gets_a_cycle_through_itself():
    # a <-> b is the shortest cycle through a; c is on a -> c -> d -> a.
    res = run(plan("p", step("a", after=["b", "c"]), step("b", after=["a"]),
                   step("c", after=["d"]), step("d", after=["a"])))
    assert res.rejected["p/a"] == "dependency cycle: p/a -> p/b -> p/a"
    assert res.rejected["p/c"] == "dependency cycle: p/c -> p/d -> p/a -> p/c"
    assert res.rejected["p/d"] == "dependency cycle: p/d -> p/a -> p/c -> p/d"


def test_long_cycle_is_named_by_its_ends():
    n = 40
    res = run(plan("p", *(step(f"s{i}", after=[f"s{(i + 1) % n}"]) for i in range(n))))
    text = res.rejected["p/s0"]
    assert text.startswith("dependency cycle: p/s0 -> p/s1") and text.endswith("p/s39 -> p/s0")
    assert "(29 more)" in text and len(res.rejected) == n


def test_call_downstream_of_a_cycle_is_escalated_not_rejected():
    res = run(plan("p", step("a", after=["b"]), step("b", after=["a"]), step("c", after=["a"]),
                   step("d", after=["c"])))
    assert set(res.rejected) == {"p/a", "p/b"}
    (esc,) = res.escalations
    assert esc.call_ids == ("p/c",) and esc.drop_deps == (("p/c", "p/a"),)
    assert "p/c depends on rejected call p/a (dependency cycle: p/a -> p/b -> p/a)" in esc.reason
    assert res.calls[3].deps == ("p/c",)  # d simply waits on c


# ------------------------------------------------------------ static problems


def test_negative_priority_rejects_every_call_of_the_plan():
    res = run(plan("p", step("a"), step("b"), priority=-1), plan("q", step("c")))
    assert res.rejected == {"p/a": "plan p: priority must be >= 0, got -1",
                            "p/b": "plan p: priority must be >= 0, got -1"}


def test_policy_denied_tool_is_rejected():
    res = run(plan("p", step("a", "danger"), step("b")),
              policy=Policy(tools={"danger": ToolOverride(deny=True), "noop": ToolOverride(live=0.9)}))
    assert res.rejected == {"p/a": "policy denies tool danger"}


def test_template_naming_an_absent_argument_is_rejected():
    res = run(plan("p", step("a", "w"), step("b", "w", path="x")))
    assert res.rejected == {"p/a": "template 'file:{path}' names argument 'path' which step a does not give"}
    assert res.calls[1].writes == ("file:x",)


def test_tool_missing_from_the_catalog_fails_closed():
    res = run(plan("p", step("a", "ghost")))
    assert res.rejected == {"p/a": "tool 'ghost' is not in the catalog"}
    assert res.calls[0].contract.risk is Risk.HIGH


def test_several_problems_are_all_named():
    res = run(plan("p", step("a", "danger", after=["zz"]), priority=-2),
              policy=Policy(tools={"danger": ToolOverride(deny=True)}))
    assert res.rejected["p/a"] == ("plan p: priority must be >= 0, got -2; policy denies tool danger; "
                                   "plan p step a: dependency 'p/zz' does not exist")


def test_dependency_on_a_rejected_call_is_an_escalated_dependency_conflict():
    res = run(plan("p", step("bad", "danger")),
              plan("q", step("c", after=["p/bad"]), step("d", after=["c"])),
              policy=Policy(tools={"danger": ToolOverride(deny=True)}))
    assert list(res.rejected) == ["p/bad"]
    (rec,) = deps_records(res)
    assert (rec.type, rec.calls, rec.resource, rec.strategy, rec.outcome) == (
        "dependency", ("q/c", "p/bad"), "call:p/bad", "escalate", "escalated")
    (esc,) = res.escalations
    assert esc.conflict_id == rec.id and esc.call_ids == ("q/c",)
    assert esc.drop_deps == (("q/c", "p/bad"),)
    assert esc.reason == (f"conflict {rec.id} dependency: q/c depends on rejected call p/bad "
                          "(policy denies tool danger); approve to run q/c without it")
    assert res.calls[1].deps == ("p/bad",)  # still listed; dropped only if granted
    assert res.cancelled == {}


def test_two_rejected_dependencies_one_escalation():
    res = run(plan("p", step("x", "danger"), step("y", "danger"), step("z", after=["x", "y"])),
              policy=Policy(tools={"danger": ToolOverride(deny=True)}))
    (esc,) = res.escalations
    assert esc.drop_deps == (("p/z", "p/x"), ("p/z", "p/y"))
    assert "depends on rejected calls p/x" in esc.reason


def test_a_rejected_dependent_of_a_rejected_call_is_not_escalated():
    res = run(plan("p", step("x", "danger"), step("y", "danger", after=["x"])),
              policy=Policy(tools={"danger": ToolOverride(deny=True)}))
    assert set(res.rejected) == {"p/x", "p/y"} and res.escalations == ()


# --------------------------------------------------------- keys and resources


def test_default_idempotency_key_is_sha256_of_tool_and_canonical_args():
    res = run(plan("p", step("a", "w", path="x", n=1), step("b", key="given")))
    want = hashlib.sha256(("w\n" + canonical_json({"n": 1, "path": "x"})).encode()).hexdigest()
    assert res.calls[0].idempotency_key == want == default_idempotency_key("w", {"path": "x", "n": 1})
    assert res.calls[1].idempotency_key == "given"
    odd = {"b": [1.5, None, True], "a": {"z": "é", "y": 0}}
    assert default_idempotency_key("t", odd) == hashlib.sha256(("t\n" + canonical_json(odd)).encode()).hexdigest()


def test_resources_render_non_strings_as_canonical_json_with_brace_escapes():
    res = run(plan("p", step("a", "tag", name="v", n=[1, 2]), step("b", "w", path=3)))
    assert res.calls[0].writes == ("tag:{v}:[1,2]",)
    assert res.calls[1].writes == ("file:3",)


def test_dotted_template_names_reach_into_nested_args():
    res = run(plan("p", step("a", "cfg", target={"path": "/etc/x"}), step("b", "cfg", target={})))
    assert res.calls[0].writes == ("cfg:/etc/x",)
    assert "names argument 'target.path'" in res.rejected["p/b"]


def test_independent_rest_still_runs_and_is_deterministic():
    batch = (plan("p", step("a", after=["b"]), step("b", after=["a"]), step("ok", "w", path="x")),
             plan("q", step("ok", "w", path="x")))
    first, second = run(*batch), run(*batch)
    assert first == second
    assert set(first.rejected) == {"p/a", "p/b"}
    assert first.order_edges == (("p/ok", "q/ok"),)
