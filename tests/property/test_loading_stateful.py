"""Stateful test of load-time validation (invariant I11: invalid input is
rejected with a reason naming where; SPEC section 3: all problems of a file are
reported together).

The machine edits a catalog and a plans file: adds, breaks, fixes and removes
tools and steps. A plain model remembers which faults it injected where; the
invariant is that the loader reports exactly the model's pointers, no fewer
(every mistake is found, however many there are) and no more (no noise, and
plans are checked against the catalog only when the catalog loaded).
"""

from __future__ import annotations

import os

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from interlock.core.convert import structure_catalog, structure_plans
from interlock.core.errors import LoadError
from interlock.core.schemas import pointer

SCHEMA = {"type": "object", "properties": {"ref": {"type": "string"}}}

#: fault -> (how it changes the tool, the pointer suffix it must be reported at)
TOOL_FAULTS = {
    "risk": (lambda t: t.update(risk="extreme"), ("risk",)),
    "timeout": (lambda t: t.update(timeout_s="30"), ("timeout_s",)),
    "retries": (lambda t: t.update(retries=-1), ("retries",)),
    "typo": (lambda t: t.update(riks="low"), ("riks",)),
    "conflict": (lambda t: t.update(conflicts_with=["no-such-tool"]), ("conflicts_with", 0)),
    "reversible": (lambda t: t.update(reversible=True), ("rollback",)),
    "template": (lambda t: t.update(effects={"writes": ["repo:{reff}"]}), ("effects", "writes", 0)),
}
#: fault -> (change, pointer suffix, needs the catalog: only checked when the catalog loaded)
STEP_FAULTS = {
    "confidence_str": (lambda s: s.update(confidence="0.9"), ("confidence",), False),
    "confidence_range": (lambda s: s.update(confidence=1.5), ("confidence",), False),
    "typo": (lambda s: s.update(confidance=0.5), ("confidance",), False),
    "empty_id": (lambda s: s.update(id=""), ("id",), False),
    "arg_type": (lambda s: s.update(args={"ref": 5}), ("args", "ref"), True),
}


class LoadingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.counter = 0
        self.tools: list[dict] = []  # {"name", "faults": set}
        self.plans: list[dict] = []  # {"plan_id", "steps": [{"id", "tool", "faults": set}]}

    # -- rules -------------------------------------------------------------------

    @rule()
    def add_tool(self) -> None:
        self.counter += 1
        self.tools.append({"name": f"t{self.counter}", "faults": set()})

    @precondition(lambda self: self.tools)
    @rule(data=st.data(), fault=st.sampled_from(sorted(TOOL_FAULTS)))
    def break_tool(self, data, fault) -> None:
        data.draw(st.sampled_from(self.tools))["faults"].add(fault)

    @precondition(lambda self: self.tools)
    @rule(data=st.data())
    def fix_tool(self, data) -> None:
        data.draw(st.sampled_from(self.tools))["faults"].clear()

    @precondition(lambda self: self.tools)
    @rule(data=st.data())
    def remove_tool(self, data) -> None:
        self.tools.remove(data.draw(st.sampled_from(self.tools)))

    @rule()
    def add_plan(self) -> None:
        self.counter += 1
        self.plans.append({"plan_id": f"p{self.counter}", "steps": []})

    @precondition(lambda self: self.plans and self.tools)
    @rule(data=st.data())
    def add_step(self, data) -> None:
        self.counter += 1
        plan = data.draw(st.sampled_from(self.plans))
        tool = data.draw(st.sampled_from(self.tools))["name"]
        plan["steps"].append({"id": f"s{self.counter}", "tool": tool, "faults": set()})

    @precondition(lambda self: any(p["steps"] for p in self.plans))
    @rule(data=st.data(), fault=st.sampled_from(sorted(STEP_FAULTS)))
    def break_step(self, data, fault) -> None:
        plan = data.draw(st.sampled_from([p for p in self.plans if p["steps"]]))
        step = data.draw(st.sampled_from(plan["steps"]))
        if fault.startswith("confidence"):
            step["faults"] -= {"confidence_str", "confidence_range"}  # one value per field
        step["faults"].add(fault)

    @precondition(lambda self: any(p["steps"] for p in self.plans))
    @rule(data=st.data())
    def fix_step(self, data) -> None:
        plan = data.draw(st.sampled_from([p for p in self.plans if p["steps"]]))
        data.draw(st.sampled_from(plan["steps"]))["faults"].clear()

    # -- the documents the model describes -----------------------------------------

    def catalog_doc(self) -> dict:
        tools = []
        for t in self.tools:
            doc = {"name": t["name"], "risk": "low", "input_schema": SCHEMA,
                   "effects": {"writes": ["repo:{ref}"]}}
            for fault in t["faults"]:
                TOOL_FAULTS[fault][0](doc)
            tools.append(doc)
        return {"schema_version": 1, "tools": tools}

    def plans_doc(self) -> dict:
        plans = []
        for p in self.plans:
            steps = []
            for s in p["steps"]:
                doc = {"id": s["id"], "tool": s["tool"], "args": {"ref": "main"}, "confidence": 0.5}
                for fault in s["faults"]:
                    STEP_FAULTS[fault][0](doc)
                steps.append(doc)
            plans.append({"plan_id": p["plan_id"], "agent_id": "a", "steps": steps})
        return {"schema_version": 1, "plans": plans}

    def expected_catalog(self) -> set[str]:
        return {pointer(("tools", i, *TOOL_FAULTS[f][1])) for i, t in enumerate(self.tools) for f in t["faults"]}

    def expected_plans(self, catalog_loaded: bool) -> set[str]:
        names = {t["name"] for t in self.tools}
        out = set()
        for i, p in enumerate(self.plans):
            for j, s in enumerate(p["steps"]):
                at = ("plans", i, "steps", j)
                if catalog_loaded and s["tool"] not in names:
                    out.add(pointer((*at, "tool")))
                for f in s["faults"]:
                    _, suffix, needs_catalog = STEP_FAULTS[f]
                    if needs_catalog and not (catalog_loaded and s["tool"] in names):
                        continue
                    out.add(pointer((*at, *suffix)))
        return out

    # -- the invariant -------------------------------------------------------------

    @invariant()
    def loader_reports_exactly_the_injected_faults(self) -> None:
        expected = self.expected_catalog()
        catalog = None
        try:
            catalog = structure_catalog(self.catalog_doc(), "c.yaml")
            found: set[str] = set()
        except LoadError as exc:
            assert {p.file for p in exc.problems} == {"c.yaml"}
            found = {p.pointer for p in exc.problems}
        assert found == expected
        assert (catalog is not None) == (not expected)

        expected = self.expected_plans(catalog is not None)
        try:
            plans = structure_plans(self.plans_doc(), "p.yaml", catalog)
            found = set()
            assert [len(p.steps) for p in plans.plans] == [len(p["steps"]) for p in self.plans]
        except LoadError as exc:
            assert {p.file for p in exc.problems} == {"p.yaml"} and all(p.message for p in exc.problems)
            found = {p.pointer for p in exc.problems}
        assert found == expected


TestLoadingMachine = LoadingMachine.TestCase
if os.environ.get("HYPOTHESIS_PROFILE") != "deep":  # keep the default run fast; deep runs the profile
    TestLoadingMachine.settings = settings(max_examples=40, stateful_step_count=30)
