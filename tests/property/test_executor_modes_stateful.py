"""The executor against an oracle: SPEC section 5 and I11.

Rules register tools with random behaviours (sync or async; returning JSON,
returning something that is not JSON, raising) with or without a dry-run
implementation, then execute them in random modes, plus calls of tools that
have no implementation at all. The model counts the calls each implementation
should have received and predicts every result.

- The LIVE callable is called exactly once per LIVE execution or rollback, and
  never for MOCK or DRY_RUN; a dry-run callable only for DRY_RUN.
- MOCK returns the contract's mock_result; DRY_RUN without an implementation
  a contract preview; LIVE without one fails (never mocked).
- I11: the executor never raises for a tool's failure; it reports it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from interlock.adapters.executors import Executor
from interlock.adapters.registry import ToolRegistry
from interlock.core.commands import Execute, Rollback
from interlock.core.model import Effects, Mode, Risk, ToolContract
from interlock.core.ports import ExecutionResult

BEHAVIOURS = ("ok", "ok_async", "raise", "raise_async", "not_json")


class Impl:
    def __init__(self, behaviour: str, tag: str) -> None:
        self.behaviour, self.tag, self.calls = behaviour, tag, 0

    def make(self) -> Any:
        def sync(**kwargs: Any) -> Any:
            self.calls += 1
            if self.behaviour == "raise":
                raise ValueError(f"{self.tag} failed")
            if self.behaviour == "not_json":
                return {1, 2}
            return {"tag": self.tag, "args": kwargs}

        async def async_(**kwargs: Any) -> Any:
            await asyncio.sleep(0)
            self.calls += 1
            if self.behaviour == "raise_async":
                raise ValueError(f"{self.tag} failed")
            return {"tag": self.tag, "args": kwargs}

        return async_ if self.behaviour.endswith("_async") else sync

    def expected(self, args: dict[str, Any]) -> ExecutionResult:
        if self.behaviour.startswith("raise"):
            return ExecutionResult(ok=False, error=f"ValueError: {self.tag} failed")
        if self.behaviour == "not_json":
            return ExecutionResult(ok=True, result={"repr": "{1, 2}"})
        return ExecutionResult(ok=True, result={"tag": self.tag, "args": args})


def contract(name: str) -> ToolContract:
    return ToolContract(name=name, risk=Risk.LOW, supports_dry_run=True, mock_result={"mock": name},
                        effects=Effects(writes=("file:{path}",)),
                        input_schema={"type": "object", "properties": {"path": {"type": "string"}}})


class ExecutorMachine(RuleBasedStateMachine):
    tools = Bundle("tools")

    def __init__(self) -> None:
        super().__init__()
        self.registry = ToolRegistry()
        self.executor = Executor(self.registry)
        self.live: dict[str, Impl] = {}
        self.dry: dict[str, Impl] = {}
        self.expected_live: dict[str, int] = {}
        self.expected_dry: dict[str, int] = {}
        self.count = 0
        self.loop = asyncio.new_event_loop()

    def teardown(self) -> None:
        self.loop.close()

    @initialize(target=tools, live=st.sampled_from(BEHAVIOURS + ("none",)),
                dry=st.sampled_from(BEHAVIOURS + ("none",)))
    def first_tool(self, live: str, dry: str) -> str:
        return self.register(live, dry)

    @rule(target=tools, live=st.sampled_from(BEHAVIOURS + ("none",)),
          dry=st.sampled_from(BEHAVIOURS + ("none",)))
    def register(self, live: str, dry: str) -> str:
        self.count += 1
        name = f"t{self.count}"
        if live != "none":
            self.live[name] = Impl(live, f"{name}.live")
            self.registry.register_live(name, self.live[name].make())
        if dry != "none":
            self.dry[name] = Impl(dry, f"{name}.dry")
            self.registry.register_dry_run(name, self.dry[name].make())
        self.expected_live[name] = self.expected_dry[name] = 0
        return name

    @rule(name=tools, mode=st.sampled_from(list(Mode)), path=st.text("ab/", max_size=3))
    def execute(self, name: str, mode: Mode, path: str) -> None:
        args = {"path": path}
        got = self.loop.run_until_complete(self.executor.execute(Execute("p/s", name, args, mode, 1, 30), contract(name)))
        if mode == Mode.MOCK:
            want = ExecutionResult(ok=True, result={"mock": name})
        elif mode == Mode.DRY_RUN and name in self.dry:
            self.expected_dry[name] += 1
            want = self.dry[name].expected(args)
        elif mode == Mode.DRY_RUN:
            want = ExecutionResult(ok=True, result={
                "preview": True, "tool": name, "args": args, "reads": [], "writes": [f"file:{path}"],
                "reversible": False, "risk": "low"})
        elif name in self.live:
            self.expected_live[name] += 1
            want = self.live[name].expected(args)
        else:
            assert not got.ok and "no LIVE implementation registered" in (got.error or "")
            return
        assert got == want

    @rule(name=tools)
    def rollback(self, name: str) -> None:
        got = self.loop.run_until_complete(self.executor.rollback(Rollback("p/s", name, {"path": "x"}, 30), contract(name)))
        if name in self.live:
            self.expected_live[name] += 1
            assert got == self.live[name].expected({"path": "x"})
        else:
            assert not got.ok and "no LIVE implementation registered" in (got.error or "")

    @invariant()
    def live_callables_ran_only_for_live(self) -> None:
        assert {n: i.calls for n, i in self.live.items()} == {n: self.expected_live[n] for n in self.live}

    @invariant()
    def dry_run_callables_ran_only_for_dry_run(self) -> None:
        assert {n: i.calls for n, i in self.dry.items()} == {n: self.expected_dry[n] for n in self.dry}


TestExecutorModes = ExecutorMachine.TestCase
