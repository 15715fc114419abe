"""Approval gates, and the fail-closed wrapper the runner uses (I11)."""

from __future__ import annotations

import asyncio
import io
import textwrap
import threading
from pathlib import Path
from typing import Any

import attrs
import pytest
from rich.console import Console

from interlock.adapters.approvals import (
    NO_TTY_REASON, CallableGate, DenyAll, RulesGate, TerminalPrompt, guarded,
)
from interlock.adapters.clocks import FakeClock
from interlock.core.commands import RequestApproval
from interlock.core.errors import LoadError
from interlock.core.ports import ApprovalAnswer, ApprovalGate

EXAMPLE_RULES = Path(__file__).resolve().parents[2] / "examples" / "fs" / "approvals.yaml"
T0 = 1_700_000_000.0

REQ = RequestApproval(
    request_id="r1", kind="live", call_ids=("rel/tag",), tool="release.tag", risk="high",
    confidence=0.93, agent_id="releaser", plan_id="release-42", args={"version": "1.4.2"},
    reason="threshold.high.live needs approval", deadline=T0 + 300,
)


def ask(gate: Any, req: RequestApproval = REQ) -> ApprovalAnswer:
    return asyncio.run(gate.request(req))


def rules(tmp_path: Path, body: str, clock: FakeClock | None = None) -> RulesGate:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(body))
    return RulesGate.from_file(path, clock or FakeClock(T0))


# -- DenyAll ---------------------------------------------------------------------


def test_deny_all_denies_and_says_so() -> None:
    answer = ask(DenyAll())
    assert answer.granted is False and answer.by == "policy:deny_all" and answer.reason


def test_every_gate_is_an_approval_gate() -> None:
    for gate in (DenyAll(), RulesGate([]), TerminalPrompt(), CallableGate(lambda req: True), guarded(DenyAll())):
        assert isinstance(gate, ApprovalGate)


# -- RulesGate --------------------------------------------------------------------


def test_example_rules_approve_only_the_releaser_tagging() -> None:
    gate = RulesGate.from_file(EXAMPLE_RULES, FakeClock(T0))
    yes = ask(gate)
    assert yes.granted is True and yes.by == "alice" and "/rules/0" in yes.reason
    for other in (attrs.evolve(REQ, agent_id="deployer"), attrs.evolve(REQ, tool="release.publish"),
                  attrs.evolve(REQ, kind="conflict"), attrs.evolve(REQ, risk="medium")):
        no = ask(gate, other)
        assert no.granted is False and no.by == "policy"


def test_first_matching_rule_wins(tmp_path: Path) -> None:
    gate = rules(tmp_path, """
        schema_version: 1
        rules:
          - {decision: deny, tool: "release.*", agent: intern, reason: interns never release}
          - {decision: approve, tool: "release.*", by: bob}
    """)
    assert ask(gate, attrs.evolve(REQ, agent_id="intern")).granted is False
    assert "interns never release" in ask(gate, attrs.evolve(REQ, agent_id="intern")).reason
    assert ask(gate).granted is True and ask(gate).by == "bob"


def test_no_matching_rule_is_a_denial(tmp_path: Path) -> None:
    gate = rules(tmp_path, """
        schema_version: 1
        rules:
          - {decision: approve, tool: "k8s.*"}
    """)
    answer = ask(gate)
    assert answer.granted is False and answer.reason == "no approval rule matched"


def test_an_empty_rule_list_denies(tmp_path: Path) -> None:
    assert ask(rules(tmp_path, "schema_version: 1\nrules: []\n")).granted is False


@pytest.mark.parametrize("criteria, matches", [
    ({"tool": "release.*"}, True),
    ({"tool": "release.ta?"}, True),
    ({"tool": "Release.*"}, False),  # globs are case-sensitive
    ({"agent": "rel*"}, True),
    ({"agent": "deploy*"}, False),
    ({"plan": "release-4[0-9]"}, True),
    ({"plan": "hotfix-*"}, False),
    ({"risk": "high"}, True),
    ({"risk": "low"}, False),
    ({"kind": "live"}, True),
    ({"kind": "conflict"}, False),
    ({"args": {"version": "1.4.*"}}, True),
    ({"args": {"version": "2.*"}}, False),
    ({"args": {"missing": "*"}}, False),  # an absent arg never matches
])
def test_rule_criteria(tmp_path: Path, criteria: dict, matches: bool) -> None:
    import yaml

    doc = {"schema_version": 1, "rules": [{"decision": "approve", **criteria}]}
    gate = rules(tmp_path, yaml.safe_dump(doc))
    assert ask(gate).granted is matches


def test_non_string_args_match_by_their_json_text(tmp_path: Path) -> None:
    gate = rules(tmp_path, """
        schema_version: 1
        rules:
          - {decision: approve, args: {replicas: "3", dry: "false"}}
    """)
    assert ask(gate, attrs.evolve(REQ, args={"replicas": 3, "dry": False})).granted is True
    assert ask(gate, attrs.evolve(REQ, args={"replicas": 30, "dry": False})).granted is False


@pytest.mark.parametrize("expires", [
    "'2023-11-14T22:23:20Z'",        # quoted ISO string, Z suffix
    "2023-11-14T22:23:20Z",          # YAML turns it into a datetime itself
    "'2023-11-14T23:23:20+01:00'",   # an offset
    "'2023-11-14T22:23:20'",         # no timezone: UTC
])
def test_a_rule_expires_at_its_time(tmp_path: Path, expires: str) -> None:
    clock = FakeClock(T0 - 10)  # T0 is 2023-11-14T22:13:20Z; the rule ends 600 s later
    gate = rules(tmp_path, f"""
        schema_version: 1
        rules:
          - {{decision: approve, tool: release.tag, expires: {expires}, by: alice}}
    """, clock)
    assert ask(gate).granted is True
    clock.advance(609)
    assert ask(gate).granted is True
    clock.advance(1)  # exactly at the expiry: expired
    answer = ask(gate)
    assert answer.granted is False and answer.reason == "no approval rule matched"


def test_an_expired_rule_lets_the_next_one_decide(tmp_path: Path) -> None:
    gate = rules(tmp_path, """
        schema_version: 1
        rules:
          - {decision: approve, expires: 2020-01-01}
          - {decision: deny, by: fallback}
    """)
    assert ask(gate).by == "fallback"


def test_bad_rules_files_report_every_problem_with_pointers(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent("""
        schema_version: 2
        rule: []
        rules:
          - {decision: maybe, tool: 3}
          - {tool: x, risk: extreme, kind: batch, expires: next tuesday, colour: red}
          - {decision: approve, args: [a]}
          - just a string
    """))
    with pytest.raises(LoadError) as info:
        RulesGate.from_file(path, FakeClock())
    found = {(p.pointer, p.file) for p in info.value.problems}
    expected = {"/schema_version", "/rule", "/rules/0/decision", "/rules/0/tool", "/rules/1/decision",
                "/rules/1/risk", "/rules/1/kind", "/rules/1/expires", "/rules/1/colour", "/rules/2/args", "/rules/3"}
    assert {p for p, _ in found} == expected
    assert {f for _, f in found} == {str(path)}
    text = str(info.value)
    assert "expected one of approve, deny, got 'maybe'" in text
    assert "expected an ISO-8601 datetime" in text


@pytest.mark.parametrize("body, message", [
    ("rules: [\n", "invalid YAML at line"),
    ("- a\n- b\n", "expected a mapping"),
    ("rules: []\n", "schema_version: 1"),
    ("schema_version: 1\nrules: {a: 1}\n", "expected a list of rules"),
])
def test_malformed_rules_files_are_load_errors(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(body)
    with pytest.raises(LoadError, match=message):
        RulesGate.from_file(path, FakeClock())


def test_a_missing_rules_file_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as info:
        RulesGate.from_file(tmp_path / "nope.yaml", FakeClock())
    assert info.value.problems[0].file == str(tmp_path / "nope.yaml")


# -- TerminalPrompt -----------------------------------------------------------------


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_prompt_refuses_without_a_tty() -> None:
    answer = ask(TerminalPrompt(stdin=io.StringIO("y\n")))
    assert answer == ApprovalAnswer(granted=False, by="terminal", reason=NO_TTY_REASON)


@pytest.mark.parametrize("typed, granted", [("y\n", True), ("n\n", False), ("\n", False)])
def test_terminal_prompt_asks_and_shows_the_call(typed: str, granted: bool) -> None:
    out = io.StringIO()
    answer = ask(TerminalPrompt(console=Console(file=out, width=200), stdin=FakeTTY(typed)))
    assert answer.granted is granted and answer.by.startswith("terminal:")
    shown = out.getvalue()
    for text in ("release.tag", "high", "0.93", "releaser", '"version": "1.4.2"', "Approve?"):
        assert text in shown


# -- CallableGate -------------------------------------------------------------------


def test_callable_gate_with_the_request() -> None:
    seen = []

    def decide(req: RequestApproval) -> bool:
        seen.append(req.request_id)
        return req.agent_id == "releaser"

    answer = ask(CallableGate(decide))
    assert answer.granted is True and answer.by == "callable:test_callable_gate_with_the_request.<locals>.decide"
    assert seen == ["r1"]
    assert ask(CallableGate(decide), attrs.evolve(REQ, agent_id="x")).granted is False


def test_callable_gate_with_the_seed_signature() -> None:
    seen = []

    def approval_gate_callback(tool: str, confidence: float) -> bool:
        seen.append((tool, confidence))
        return confidence >= 0.9

    assert ask(CallableGate(approval_gate_callback)).granted is True
    assert ask(CallableGate(approval_gate_callback), attrs.evolve(REQ, confidence=0.5)).granted is False
    assert seen == [("release.tag", 0.93), ("release.tag", 0.5)]


def test_callable_gate_seed_signature_by_position_and_async() -> None:
    async def gate(t, c):  # two positional parameters, any names
        await asyncio.sleep(0)
        return t == "release.tag" and c > 0.9

    assert ask(CallableGate(gate)).granted is True
    assert ask(CallableGate(lambda t, c: False)).granted is False


def test_callable_gate_async_with_the_request_may_answer_fully() -> None:
    async def decide(req: RequestApproval) -> ApprovalAnswer:
        return ApprovalAnswer(granted=True, by="carol", reason="on call")

    assert ask(CallableGate(decide)) == ApprovalAnswer(granted=True, by="carol", reason="on call")


@pytest.mark.parametrize("value", [1, "yes", None, [True], ApprovalAnswer(granted="yes", by="x")])  # type: ignore[arg-type]
def test_callable_gate_denies_anything_but_a_clear_answer(value: Any) -> None:
    answer = ask(CallableGate(lambda req: value))
    assert answer.granted is False and "not True/False" in answer.reason


def test_sync_callbacks_do_not_block_the_event_loop() -> None:
    release = threading.Event()

    def slow(req: RequestApproval) -> bool:
        release.wait(60)
        return True

    async def scenario() -> ApprovalAnswer:
        pending = asyncio.ensure_future(CallableGate(slow).request(REQ))
        await asyncio.sleep(0.01)  # the loop is free while the callback blocks
        assert not pending.done()
        release.set()
        return await pending

    assert asyncio.run(scenario()).granted is True


# -- guarded: fail closed ----------------------------------------------------------


class Scripted:
    def __init__(self, behaviour: Any) -> None:
        self.behaviour = behaviour
        self.asked = 0

    async def request(self, req: RequestApproval) -> Any:
        self.asked += 1
        if isinstance(self.behaviour, BaseException):
            raise self.behaviour
        if self.behaviour == "hang":
            await asyncio.Event().wait()
        return self.behaviour


def test_guarded_passes_a_clear_answer_through() -> None:
    answer = ApprovalAnswer(granted=True, by="alice", reason="ok")
    assert ask(guarded(Scripted(answer), FakeClock(T0))) == answer
    assert ask(guarded(Scripted(True), FakeClock(T0))).granted is True


def test_guarded_denies_when_the_gate_never_answers() -> None:
    gate = guarded(Scripted("hang"), FakeClock(T0))
    answer = ask(gate, attrs.evolve(REQ, deadline=T0 + 0.02))
    assert answer.granted is False and answer.reason.startswith("approval timed out")


def test_guarded_denies_without_asking_once_the_deadline_passed() -> None:
    inner = Scripted(True)
    answer = ask(guarded(inner, FakeClock(T0 + 301)))
    assert answer.granted is False and "approval timed out" in answer.reason
    assert inner.asked == 0


@pytest.mark.parametrize("exc, reason", [
    (RuntimeError("ldap down"), "approval gate failed: RuntimeError: ldap down"),
    (KeyError("user"), "approval gate failed: KeyError: 'user'"),
    (TimeoutError(), "approval gate failed: TimeoutError"),  # its own, not the deadline
])
def test_guarded_turns_exceptions_into_denials(exc: Exception, reason: str) -> None:
    answer = ask(guarded(Scripted(exc), FakeClock(T0)))
    assert answer.granted is False and answer.reason == reason


@pytest.mark.parametrize("value", ["yes", 1, None, ApprovalAnswer(granted=1, by="x")])  # type: ignore[arg-type]
def test_guarded_turns_unclear_answers_into_denials(value: Any) -> None:
    answer = ask(guarded(Scripted(value), FakeClock(T0)))
    assert answer.granted is False and "not True/False" in answer.reason


def test_guarded_accepts_a_gate_answering_synchronously() -> None:
    class Sync:
        def request(self, req: RequestApproval) -> ApprovalAnswer:
            return ApprovalAnswer(granted=True, by="sync")

    assert ask(guarded(Sync(), FakeClock(T0))).by == "sync"


def test_guarded_is_idempotent() -> None:
    gate = guarded(DenyAll(), FakeClock(T0))
    assert guarded(gate) is gate


def test_guarded_terminal_prompt_that_nobody_answers_times_out() -> None:
    class Silent(io.StringIO):  # a TTY whose user walked away
        def isatty(self) -> bool:
            return True

        def readline(self, *_: Any) -> str:
            threading.Event().wait(60)
            return "y\n"

    gate = guarded(TerminalPrompt(console=Console(file=io.StringIO()), stdin=Silent()), FakeClock(T0))
    answer = ask(gate, attrs.evolve(REQ, deadline=T0 + 0.05))
    assert answer.granted is False and answer.reason.startswith("approval timed out")
