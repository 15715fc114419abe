"""The guarded approval gate against an oracle: I11 (fail closed) and I9.

Each request goes to a gate with a random behaviour: a clear yes or no (as a
bool or an ApprovalAnswer), an unclear answer (a string, a number, None, an
ApprovalAnswer whose ``granted`` is not a bool), an exception, an answer that
never comes, or a request whose deadline already passed; sync or async,
wrapped as a gate object or a CallableGate (with either signature). The fake
clock moves between requests.

- I11: a request is granted only when the gate clearly said yes before the
  deadline; every other outcome is a denial with a reason, never an exception.
- I9: every request is answered, even when the gate never answers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from interlock.adapters.approvals import CallableGate, guarded
from interlock.adapters.clocks import FakeClock
from interlock.core.commands import RequestApproval
from interlock.core.ports import ApprovalAnswer

CLEAR = {"yes": True, "no": False, "answer_yes": True, "answer_no": False}
UNCLEAR = ("text", "number", "none", "answer_granted_text")
FAILING = ("raise", "hang", "late")
BEHAVIOURS = tuple(CLEAR) + UNCLEAR + FAILING
SHAPES = ("gate_async", "gate_sync", "callable_req", "callable_seed", "callable_async")


def answer_value(behaviour: str) -> Any:
    return {
        "yes": True, "no": False,
        "answer_yes": ApprovalAnswer(True, "alice", "ok"), "answer_no": ApprovalAnswer(False, "bob", "no"),
        "text": "yes", "number": 1, "none": None, "answer_granted_text": ApprovalAnswer("yes", "eve"),  # type: ignore[arg-type]
    }[behaviour]


def make_gate(behaviour: str, shape: str) -> Any:
    async def produce() -> Any:
        if behaviour == "raise":
            raise RuntimeError("gate broke")
        if behaviour == "hang":
            await asyncio.Event().wait()
        return answer_value(behaviour)

    def produce_sync() -> Any:
        if behaviour == "raise":
            raise RuntimeError("gate broke")
        return answer_value(behaviour)

    if behaviour == "hang" or shape == "gate_async":
        class Async:
            async def request(self, req: RequestApproval) -> Any:
                return await produce()
        return Async()
    if shape == "gate_sync":
        class Sync:
            def request(self, req: RequestApproval) -> Any:
                return produce_sync()
        return Sync()
    if shape == "callable_req":
        return CallableGate(lambda req: produce_sync())
    if shape == "callable_seed":
        return CallableGate(lambda tool, confidence: produce_sync())

    async def decide(req: RequestApproval) -> Any:
        return await produce()

    return CallableGate(decide)


class GuardMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(1_000.0)
        self.loop = asyncio.new_event_loop()
        self.n = 0
        self.granted: list[bool] = []
        self.expected: list[bool] = []

    def teardown(self) -> None:
        self.loop.close()

    @rule(behaviour=st.sampled_from(BEHAVIOURS), shape=st.sampled_from(SHAPES),
          confidence=st.floats(0, 1), advance=st.floats(0, 100))
    def request(self, behaviour: str, shape: str, confidence: float, advance: float) -> None:
        self.clock.advance(advance)
        self.n += 1
        now = self.clock.now()
        # "hang" waits out a short real deadline; "late" arrives after the deadline passed.
        deadline = now - 1 if behaviour == "late" else now + (0.002 if behaviour == "hang" else 60)
        req = RequestApproval(
            request_id=f"r{self.n}", kind="live", call_ids=(f"p/s{self.n}",), tool="t", risk="high",
            confidence=confidence, agent_id="a", plan_id="p", args={}, reason="test", deadline=deadline)
        inner = make_gate("yes" if behaviour == "late" else behaviour, shape)
        answer = self.loop.run_until_complete(guarded(inner, self.clock).request(req))
        assert isinstance(answer, ApprovalAnswer) and isinstance(answer.granted, bool)
        assert answer.by and (answer.granted or answer.reason)
        self.granted.append(answer.granted)
        self.expected.append(CLEAR.get(behaviour, False))

    @invariant()
    def granted_only_on_a_clear_timely_yes(self) -> None:
        assert self.granted == self.expected


TestGuardedApprovals = GuardMachine.TestCase
