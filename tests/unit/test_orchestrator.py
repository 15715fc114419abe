"""Example-based tests of the orchestrator: one flow each, answers fed by hand."""

from __future__ import annotations

import pytest

from interlock.core.commands import (
    Alert, Cancelled, ClaimIntent, Execute, RequestApproval, Rollback, RunFinished, SystemLocked,
)
from interlock.core.controller.states import State
from interlock.core.errors import InvalidTransition, OrchestrationError
from interlock.core.model import (
    ApprovalPolicy, Catalog, Effects, Mode, OnDenied, OnFailure, Plan, PlanSet, Policy, Risk,
    RollbackSpec, Step, ToolContract,
)
from interlock.core.orchestrator import Orchestrator
from interlock.core.ports import ExecutionResult

OK = ExecutionResult(ok=True, result={"backup": "b1"})
FAIL = ExecutionResult(ok=False, error="boom")
LOST = ExecutionResult(ok=False, error="timed out", lost=True)

CATALOG = Catalog(tools=(
    ToolContract("write", Risk.MEDIUM, reversible=True, rollback=RollbackSpec("restore", {"path": "{path}", "backup": "{result.backup}"}),
                 idempotent=True, supports_dry_run=True, effects=Effects(writes=("file:{path}",))),
    ToolContract("restore", Risk.LOW, idempotent=True),
    ToolContract("delete", Risk.HIGH, supports_dry_run=True, effects=Effects(writes=("file:{path}",))),
    ToolContract("check", Risk.LOW, retries=2, idempotent=True),
    ToolContract("push", Risk.MEDIUM, retries=3),
))
LIVE = Policy(allow_live=True)


def step(id, tool, conf=0.95, after=(), **args):
    return Step(id=id, tool=tool, confidence=conf, args=args or {"path": "a"}, after=tuple(after))


def plans(*plans):
    return PlanSet(plans=tuple(plans))


def plan(pid, *steps, agent="a1", priority=0, on_failure=OnFailure.ROLLBACK):
    return Plan(plan_id=pid, agent_id=agent, steps=tuple(steps), priority=priority, on_failure=on_failure)


def of(cmds, kind):
    return [c for c in cmds if isinstance(c, kind)]


class Auto(Orchestrator):
    """Answers ledger claims at once (an empty ledger grants every first claim)."""

    def _auto(self, cmds):
        out = []
        for c in cmds:
            if isinstance(c, ClaimIntent):
                out.extend(self._auto(self.intent_answered(c.call_id, None, 0)))
            else:
                out.append(c)
        return out

    def submit(self, *a):
        return self._auto(super().submit(*a))

    def execution_finished(self, *a):
        return self._auto(super().execution_finished(*a))

    def rollback_finished(self, *a):
        return self._auto(super().rollback_finished(*a))

    def approval_answered(self, *a, **k):
        return self._auto(super().approval_answered(*a, **k))

    def lock(self, *a):
        return self._auto(super().lock(*a))


def test_default_policy_never_goes_live():
    o = Auto(CATALOG, Policy(), run_id="r")
    cmds = o.submit(plans(plan("p", step("w", "write"))), 0)
    (ex,) = of(cmds, Execute)
    assert ex.mode is Mode.DRY_RUN  # allow_live is false by default
    assert o.calls["p/w"].rule == "live_disabled"


def test_dependency_order_and_success():
    o = Auto(CATALOG, LIVE, run_id="r")
    cmds = o.submit(plans(plan("p", step("w", "write"), step("c", "check", after=["w"]))), 0)
    assert [c.call_id for c in of(cmds, Execute)] == ["p/w"]  # c waits for w (I5)
    cmds = o.execution_finished("p/w", OK, 1)
    assert [c.call_id for c in of(cmds, Execute)] == ["p/c"]
    cmds = o.execution_finished("p/c", OK, 2)
    assert of(cmds, RunFinished) == [RunFinished(0)]
    assert o.done and o.exit_code() == 0


def test_failure_cancels_dependents_and_rolls_back_live_reversible():
    o = Auto(CATALOG, LIVE, run_id="r")
    o.submit(plans(plan("p", step("w1", "write", path="a"), step("w2", "write", after=["w1"], path="b"),
                        step("c", "check", after=["w2"], path="x"),
                        step("d", "check", after=["c"], path="y"))), 0)
    o.execution_finished("p/w1", OK, 1)
    o.execution_finished("p/w2", ExecutionResult(ok=True, result={"backup": "b2"}), 2)
    o.execution_finished("p/c", FAIL, 3)  # retry 1
    o.execution_finished("p/c", FAIL, 4)  # retry 2
    cmds = o.execution_finished("p/c", FAIL, 5)
    assert o.state_of("p/c") is State.FAILED
    assert o.state_of("p/d") is State.CANCELLED
    (rb,) = of(cmds, Rollback)  # reverse completion order: w2 first
    assert rb.call_id == "p/w2" and rb.args == {"path": "b", "backup": "b2"}
    (rb2,) = of(o.rollback_finished("p/w2", OK, 6), Rollback)
    assert rb2.call_id == "p/w1"
    cmds = o.rollback_finished("p/w1", OK, 7)
    assert o.state_of("p/w1") is State.ROLLED_BACK and o.state_of("p/w2") is State.ROLLED_BACK
    assert of(cmds, RunFinished) == [RunFinished(1)]
    assert [r.outcome for r in o.rollbacks] == ["rolled_back", "rolled_back"]


def test_keep_plan_does_not_roll_back():
    o = Auto(CATALOG, LIVE, run_id="r")
    o.submit(plans(plan("p", step("w", "write"), step("x", "push", after=["w"]), on_failure=OnFailure.KEEP)), 0)
    o.execution_finished("p/w", OK, 1)
    cmds = o.execution_finished("p/x", LOST, 2)
    assert o.state_of("p/x") is State.OUTCOME_UNKNOWN  # LIVE, not idempotent: never retried
    assert of(cmds, Alert) and not of(cmds, Rollback)
    assert o.state_of("p/w") is State.SUCCEEDED


def test_high_risk_needs_approval_and_denial_falls_to_dry_run():
    o = Auto(CATALOG, LIVE, run_id="r")
    cmds = o.submit(plans(plan("p", step("d", "delete"))), 0)
    (req,) = of(cmds, RequestApproval)
    assert o.state_of("p/d") is State.AWAITING_APPROVAL
    cmds = o.approval_answered(req.request_id, False, "bob", 1)
    (ex,) = of(cmds, Execute)
    assert ex.mode is Mode.DRY_RUN and o.calls["p/d"].rule == "approval_denied"


def test_approval_granted_claims_the_irreversible_key_before_live():
    o = Orchestrator(CATALOG, LIVE, run_id="r")
    (req,) = of(o.submit(plans(plan("p", step("d", "delete"))), 0), RequestApproval)
    cmds = o.approval_answered(req.request_id, True, "alice", 1)
    assert cmds == [ClaimIntent("p/d", o.calls["p/d"].call.idempotency_key, "delete")]
    assert o.state_of("p/d") is State.AWAITING_APPROVAL  # not live until the claim is durable
    (ex,) = of(o.intent_answered("p/d", None, 2), Execute)
    assert ex.mode is Mode.LIVE and o.calls["p/d"].approved_by == "alice"


def test_refused_claim_cancels_as_duplicate():
    o = Orchestrator(CATALOG, Policy(allow_live=True, approval=ApprovalPolicy(required_for=())), run_id="r")
    o.submit(plans(plan("p", step("d", "delete"))), 0)
    cmds = o.intent_answered("p/d", "other-run/p/d", 1)
    assert o.state_of("p/d") is State.CANCELLED
    assert "duplicate of other-run/p/d" in of(cmds, Cancelled)[0].reason


def test_approval_timeout_on_tick_is_a_denial():
    pol = Policy(allow_live=True, approval=ApprovalPolicy(timeout_s=5, on_denied=OnDenied.CANCEL))
    o = Auto(CATALOG, pol, run_id="r")
    o.submit(plans(plan("p", step("d", "delete"), step("c", "check", after=["d"]))), 0)
    assert o.tick(4.9) == []
    cmds = o.tick(5.0)
    assert o.state_of("p/d") is State.CANCELLED and o.state_of("p/c") is State.CANCELLED
    assert o.calls["p/d"].rule == "approval_timeout"
    assert of(cmds, RunFinished) == [RunFinished(1)]


def test_lock_blocks_live_for_every_later_call():
    o = Auto(CATALOG, LIVE, run_id="r")
    o.submit(plans(plan("p", step("c1", "check", path="1"), step("c2", "check", after=["c1"], path="2"))), 0)
    assert of(o.lock("drill", "op", 1), SystemLocked)
    (ex,) = of(o.execution_finished("p/c1", OK, 2), Execute)
    assert ex.mode is Mode.MOCK and o.calls["p/c2"].rule == "system_locked"
    with pytest.raises(OrchestrationError):
        o.unlock("  ", "op", 3)


def test_write_conflict_between_agents_is_serialized():
    o = Auto(CATALOG, LIVE, run_id="r")
    cmds = o.submit(plans(plan("p1", step("w", "write"), agent="a1"),
                          plan("p2", step("w", "write"), agent="a2", priority=5)), 0)
    assert [c.call_id for c in of(cmds, Execute)] == ["p2/w"]  # higher priority first
    assert o.conflicts and o.conflicts[0].type == "write_write"
    cmds = o.execution_finished("p2/w", OK, 1)
    assert [c.call_id for c in of(cmds, Execute)] == ["p1/w"]


def test_duplicate_irreversible_is_deduplicated():
    o = Auto(CATALOG, LIVE, run_id="r")
    o.submit(plans(plan("p1", step("d", "delete", path="x")), plan("p2", step("d", "delete", path="x"))), 0)
    assert o.state_of("p2/d") is State.CANCELLED
    assert "p1/d" in o.calls["p2/d"].reason


def test_ledger_from_an_earlier_run_cancels():
    key = Orchestrator(CATALOG, LIVE, run_id="x")
    key.submit(plans(plan("p", step("d", "delete", path="x"))), 0)
    k = key.calls["p/d"].call.idempotency_key
    o = Auto(CATALOG, LIVE, run_id="r", ledger={("delete", k): "old/p/d"})
    o.submit(plans(plan("p", step("d", "delete", path="x"))), 0)
    assert o.state_of("p/d") is State.CANCELLED


def test_rejected_plan_problems_and_the_rest_runs():
    o = Auto(CATALOG, LIVE, run_id="r")
    cmds = o.submit(plans(plan("p", step("a", "check", after=["nope"]), step("b", "check"))), 0)
    assert o.state_of("p/a") is State.REJECTED
    assert [c.call_id for c in of(cmds, Execute)] == ["p/b"]


def test_resolve_settles_outcome_unknown():
    o = Auto(CATALOG, LIVE, run_id="r")
    o.submit(plans(plan("p", step("x", "push"))), 0)
    o.execution_finished("p/x", LOST, 1)
    o.resolve("p/x", True, "ops", 2)
    assert o.state_of("p/x") is State.SUCCEEDED
    with pytest.raises(InvalidTransition):
        o.resolve("p/x", True, "ops", 3)


def test_events_for_unknown_calls_raise_one_error_type():
    o = Auto(CATALOG, LIVE, run_id="r")
    o.submit(plans(plan("p", step("c", "check"))), 0)
    with pytest.raises(OrchestrationError):
        o.execution_finished("nope", OK, 1)
    with pytest.raises(OrchestrationError):
        o.approval_answered("nope", True, "x", 1)
    with pytest.raises(OrchestrationError):
        o.submit(plans(), 1)


def test_read_only_tools_are_not_deduplicated_but_undeclared_ones_are():
    """A tool whose contract says it only reads has no side effect to duplicate (two
    agents may read one file); a tool that writes, or declares no effects, is guarded (I4)."""
    cat = Catalog(tools=(
        ToolContract("read", Risk.LOW, effects=Effects(reads=("file:{path}",))),
        ToolContract("opaque", Risk.LOW),
    ))
    assert not cat.get("read").guarded_once and cat.get("opaque").guarded_once
    o = Auto(cat, LIVE, run_id="r")
    cmds = o.submit(plans(plan("p1", step("r", "read"), step("x", "opaque")),
                          plan("p2", step("r", "read"), step("x", "opaque"))), 0)
    assert {c.call_id for c in of(cmds, Execute)} == {"p1/r", "p2/r", "p1/x"}
    assert not o.calls["p1/r"].claimed and o.calls["p1/x"].claimed  # only the guarded one claims
    assert o.state_of("p2/x") is State.CANCELLED and "duplicate" in o.calls["p2/x"].reason


# Regressions from a second read of the orchestrator (each reproduced, then fixed).

def test_a_key_that_went_live_is_never_given_back_even_if_the_retry_is_locked_down():
    cat = Catalog(tools=(ToolContract("pay", Risk.LOW, idempotent=True, retries=1),))
    o = Auto(cat, LIVE, run_id="r")
    o.submit(plans(plan("p", step("s", "pay", amount=1))), 0)
    assert o.calls["p/s"].claimed
    o.lock("incident", "ops", 1)
    cmds = o.execution_finished("p/s", FAIL, 2)  # the retry now runs MOCK
    assert [c.mode for c in of(cmds, Execute)] == [Mode.MOCK]
    assert not any(type(c).__name__ == "ReleaseIntent" for c in cmds)
    assert ("pay", o.calls["p/s"].call.idempotency_key) in o.ledger_keys  # I4


def test_no_retry_after_an_abort():
    o = Auto(CATALOG, LIVE, run_id="r")
    o.submit(plans(plan("p", step("c", "check"))), 0)
    o.abort("ctrl-c", 1)
    cmds = o.execution_finished("p/c", FAIL, 2)
    assert of(cmds, Execute) == [] and o.state_of("p/c") is State.CANCELLED


def test_no_retry_once_a_dependency_is_being_rolled_back():
    o = Auto(CATALOG, LIVE, run_id="r")
    o.submit(plans(plan("q", step("a", "write", path="x"), step("c", "push", path="y")),
                   plan("p", step("b", "check", after=["q/a"], path="z"))), 0)
    o.execution_finished("q/a", OK, 1)                     # releases p/b, which starts
    assert o.state_of("p/b") is State.RUNNING_LIVE
    o.execution_finished("q/c", FAIL, 2)                   # q fails: q/a is compensated
    assert o.state_of("q/a") is State.ROLLING_BACK
    cmds = o.execution_finished("p/b", FAIL, 3)            # p/b had retries left
    assert of(cmds, Execute) == [] and o.state_of("p/b") is State.CANCELLED  # I5


def test_a_serialize_chain_stays_ordered_when_its_middle_call_is_cancelled():
    """a1 -> b1 -> c1 all write file:x. b1 is cancelled at run time (its dependency
    failed) while a1 still runs: c1 must still wait for a1 (I6)."""
    o = Auto(CATALOG, LIVE, run_id="r")
    o.submit(plans(plan("pa", step("a1", "write", path="x"), priority=3),
                   plan("pb", step("b0", "push", path="q"), step("b1", "write", after=["b0"], path="x"),
                        priority=2),
                   plan("pc", step("c0", "check", path="r"), step("c1", "write", after=["c0"], path="x"),
                        priority=1)), 0)
    o.execution_finished("pc/c0", OK, 1)
    assert o.state_of("pc/c1") is State.WAITING
    o.execution_finished("pb/b0", LOST, 2)                 # b0 lost -> b1 cancelled
    assert o.state_of("pb/b1") is State.CANCELLED
    assert o.state_of("pa/a1") is State.RUNNING_LIVE
    assert o.state_of("pc/c1") is State.WAITING            # still behind a1
    cmds = o.execution_finished("pa/a1", OK, 3)
    assert [c.call_id for c in of(cmds, Execute)] == ["pc/c1"]


def test_a_compensation_waits_for_the_call_serialized_after_it():
    """a/w then b/w write file:x. a's plan fails while b/w runs: the restore of x must
    not run beside b/w (I6); it starts when b/w's attempt ends."""
    o = Auto(CATALOG, LIVE, run_id="r")
    o.submit(plans(plan("a", step("w", "write", path="x"), step("c", "push", path="y"), priority=5),
                   plan("b", step("w", "write", path="x"))), 0)
    o.execution_finished("a/w", OK, 1)                     # releases b/w
    assert of(o.execution_finished("a/c", FAIL, 2), Rollback) == []
    assert o.state_of("b/w") is State.RUNNING_LIVE
    (rb,) = of(o.execution_finished("b/w", OK, 3), Rollback)
    assert rb.call_id == "a/w"


def test_a_call_that_loses_a_priority_conflict_is_cancelled_with_the_conflict_as_its_rule():
    from interlock.core.model import ConflictPolicy, Strategy

    pol = Policy(allow_live=True, conflicts=ConflictPolicy(write_write=Strategy.PRIORITY))
    o = Auto(CATALOG, pol, run_id="r")
    cmds = o.submit(plans(plan("p1", step("w", "write"), priority=1), plan("p2", step("w", "write"), priority=5)), 0)
    assert [c.call_id for c in of(cmds, Execute)] == ["p2/w"]
    assert o.state_of("p1/w") is State.CANCELLED and o.calls["p1/w"].rule == "conflict.write_write"
    assert "lost to p2/w" in o.calls["p1/w"].reason
