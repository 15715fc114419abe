"""Conflict detection: every type under every strategy it allows (SPEC section 4).

Plans go through ``intake`` (the public entry point); each test builds the
smallest batch that shows one rule and checks records, edges, cancellations
and escalations exactly.
"""

from __future__ import annotations

import pytest

from interlock.core.calls import Escalation
from interlock.core.conflicts import ALLOWED_STRATEGIES, chain_order, detect
from interlock.core.intake import intake
from interlock.core.model import (
    Catalog, ConflictPolicy, ConflictType, Effects, Plan, PlanSet, Policy, Risk, RollbackSpec,
    Step, Strategy, ToolContract,
)

S = Strategy


def tool(name, reads=(), writes=(), reversible=True, conflicts_with=(), max_concurrency=None):
    return ToolContract(
        name=name, risk=Risk.LOW, reversible=reversible,
        rollback=RollbackSpec(name) if reversible else None,
        effects=Effects(tuple(reads), tuple(writes)),
        conflicts_with=tuple(conflicts_with), max_concurrency=max_concurrency,
    )


CATALOG = Catalog(tools=(
    tool("w", writes=["file:{path}"]),
    tool("r", reads=["file:{path}"]),
    tool("cp", reads=["file:{src}"], writes=["file:{dst}"]),
    tool("noop"),
    tool("pay", reversible=False),
    tool("fs.delete", writes=["file:{path}"], conflicts_with=["fs.touch"]),
    tool("fs.touch", reads=["file:{path}"]),
    tool("gpu.train", conflicts_with=["gpu.render"]),
    tool("gpu.render"),
    tool("slot", max_concurrency=2),
))


def step(id, tool, after=(), key=None, **args):
    return Step(id=id, tool=tool, confidence=0.9, args=args, after=tuple(after), idempotency_key=key)


def plan(pid, *steps, priority=0):
    return Plan(plan_id=pid, agent_id=f"agent-{pid}", steps=tuple(steps), priority=priority)


def run(*plans, ledger=None, catalog=CATALOG, **strategies):
    policy = Policy(conflicts=ConflictPolicy(**{k: S(v) for k, v in strategies.items()}))
    return intake(PlanSet(plans=tuple(plans)), catalog, policy, ledger=ledger or {})


def of_type(res, kind):
    return [c for c in res.conflicts if c.type == kind]


# ----------------------------------------------------------------- write_write


def test_write_write_serialize_is_a_chain_in_priority_then_submission_order():
    res = run(plan("a", step("s", "w", path="x")),
              plan("b", step("s", "w", path="x"), priority=5),
              plan("c", step("s", "w", path="x")))
    (rec,) = res.conflicts
    assert (rec.id, rec.type, rec.resource, rec.strategy, rec.outcome) == (
        "C0001", "write_write", "file:x", "serialize", "serialized")
    assert rec.calls == ("b/s", "a/s", "c/s")  # higher priority first, then submission order
    assert rec.detail == {"order": ("b/s", "a/s", "c/s")}
    assert res.order_edges == (("b/s", "a/s"), ("a/s", "c/s"))  # k-1 edges, not k(k-1)/2
    assert res.cancelled == {} and res.escalations == () and res.rejected == {}


def test_write_write_chain_never_contradicts_a_dependency():
    # b/s has the higher priority but depends on a/u, so it is one level deeper:
    # putting it first in the chain would deadlock against the dependency.
    res = run(plan("a", step("u", "noop"), step("s", "w", path="x")),
              plan("b", step("s", "w", after=["a/u"], path="x"), priority=9))
    assert res.order_edges == (("a/s", "b/s"),)


def test_writers_already_ordered_by_direct_dependencies_are_no_conflict():
    res = run(plan("a", step("one", "w", path="x"), step("two", "w", after=["one"], path="x"),
                   step("three", "w", after=["two"], path="x")))
    assert res.conflicts == () and res.order_edges == ()


def test_only_transitive_order_still_counts_as_unordered():
    # one -> mid -> two orders one before two, but not directly: documented as
    # conservative, the chain adds the (redundant) edge.
    res = run(plan("a", step("one", "w", path="x"), step("mid", "noop", after=["one"]),
                   step("two", "w", after=["mid"], path="x")))
    (rec,) = res.conflicts
    assert rec.type == "write_write" and res.order_edges == (("a/one", "a/two"),)


def test_write_write_priority_highest_call_proceeds_others_cancelled():
    res = run(plan("a", step("s", "w", path="x"), priority=2),
              plan("b", step("s", "w", path="x"), priority=5),
              plan("c", step("s", "w", path="x"), priority=1),
              write_write="priority")
    (rec,) = res.conflicts
    assert (rec.strategy, rec.outcome) == ("priority", "prioritized")
    assert rec.detail == {"winner": "b/s", "priority": 5, "cancelled": ["a/s", "c/s"]}
    assert res.cancelled == {
        "a/s": "conflict C0001 write_write on file:x: lost to b/s (priority 5 > 2)",
        "c/s": "conflict C0001 write_write on file:x: lost to b/s (priority 5 > 1)",
    }
    assert res.order_edges == () and res.escalations == ()


def test_write_write_priority_tie_at_the_top_escalates_and_still_orders():
    res = run(plan("a", step("s", "w", path="x"), priority=5),
              plan("b", step("s", "w", path="x"), priority=5),
              plan("c", step("s", "w", path="x"), priority=1),
              write_write="priority")
    (rec,) = res.conflicts
    assert (rec.strategy, rec.outcome) == ("priority", "escalated")
    assert rec.detail["tie"] == ["a/s", "b/s"] and rec.detail["priority"] == 5
    (esc,) = res.escalations
    assert esc.conflict_id == "C0001" and esc.call_ids == ("a/s", "b/s", "c/s")
    assert "priority tie at 5 between a/s, b/s" in esc.reason
    assert res.order_edges == (("a/s", "b/s"), ("b/s", "c/s"))  # I6 if granted
    assert res.cancelled == {}


def test_write_write_escalate_one_escalation_for_the_group_plus_the_chain():
    res = run(plan("a", step("s", "w", path="x")), plan("b", step("s", "w", path="x")),
              write_write="escalate")
    (rec,) = res.conflicts
    assert (rec.strategy, rec.outcome) == ("escalate", "escalated")
    assert res.escalations == (Escalation(
        "C0001", ("a/s", "b/s"),
        "conflict C0001 write_write on file:x: 2 calls (a/s, b/s); approve to run them one at a time"),)
    assert res.order_edges == (("a/s", "b/s"),)


# ----------------------------------------------------------------- read_write


def test_read_write_serialize_readers_sit_between_neighbouring_writers():
    # chain order: w1 (prio 9), r1, r2 (prio 5), w2 (prio 3), r3 (prio 0)
    res = run(plan("w1", step("s", "w", path="x"), priority=9),
              plan("r1", step("s", "r", path="x"), priority=5),
              plan("r2", step("s", "r", path="x"), priority=5),
              plan("w2", step("s", "w", path="x"), priority=3),
              plan("r3", step("s", "r", path="x")))
    ww, rw = res.conflicts
    assert (ww.type, rw.type) == ("write_write", "read_write")
    assert rw.calls == ("w1/s", "r1/s", "r2/s", "w2/s", "r3/s")
    assert rw.detail["readers"] == ["r1/s", "r2/s", "r3/s"]
    assert set(res.order_edges) == {
        ("w1/s", "w2/s"),
        ("w1/s", "r1/s"), ("r1/s", "w2/s"),
        ("w1/s", "r2/s"), ("r2/s", "w2/s"),
        ("w2/s", "r3/s"),
    }
    # readers of the same gap run concurrently: no edge between r1 and r2
    assert ("r1/s", "r2/s") not in res.order_edges and ("r2/s", "r1/s") not in res.order_edges


def test_readers_alone_never_conflict():
    res = run(plan("a", step("s", "r", path="x")), plan("b", step("s", "r", path="x")))
    assert res.conflicts == () and res.order_edges == ()


def test_a_call_reading_and_writing_one_resource_counts_as_its_writer():
    res = run(plan("a", step("s", "cp", src="x", dst="x")), plan("b", step("s", "r", path="x")))
    (rec,) = res.conflicts
    assert rec.type == "read_write" and res.order_edges == (("a/s", "b/s"),)


def test_read_write_priority_reader_side_wins():
    res = run(plan("w", step("s", "w", path="x"), priority=1),
              plan("r", step("s", "r", path="x"), priority=4),
              plan("r2", step("s", "r", path="x"), priority=0),
              read_write="priority")
    (rec,) = res.conflicts
    assert rec.detail["winner"] == "r/s"
    assert res.cancelled == {"w/s": "conflict C0001 read_write on file:x: lost to r/s (priority 4 > 1)"}


def test_read_write_priority_writer_side_wins():
    res = run(plan("w", step("s", "w", path="x"), priority=7),
              plan("r", step("s", "r", path="x"), priority=4),
              read_write="priority")
    assert res.cancelled == {"r/s": "conflict C0001 read_write on file:x: lost to w/s (priority 7 > 4)"}


def test_read_write_priority_tie_escalates():
    res = run(plan("w", step("s", "w", path="x"), priority=4),
              plan("r", step("s", "r", path="x"), priority=4),
              read_write="priority")
    (rec,) = res.conflicts
    assert rec.outcome == "escalated" and res.escalations[0].call_ids == ("w/s", "r/s")
    assert res.order_edges == (("w/s", "r/s"),)


def test_read_write_escalate():
    res = run(plan("w", step("s", "w", path="x")), plan("r", step("s", "r", path="x")),
              read_write="escalate")
    (esc,) = res.escalations
    assert esc.call_ids == ("w/s", "r/s") and res.order_edges == (("w/s", "r/s"),)


# ----------------------------------------------------- duplicate_irreversible


def test_duplicate_irreversible_deduplicate_keeps_highest_priority_then_first():
    res = run(plan("a", step("s", "pay", invoice=7)),
              plan("b", step("s", "pay", invoice=7), priority=3),
              plan("c", step("s", "pay", invoice=7), priority=3))
    (rec,) = res.conflicts
    assert rec.type == "duplicate_irreversible" and rec.outcome == "deduplicated"
    assert rec.detail == {"kept": "b/s", "cancelled": ["c/s", "a/s"]}
    reason = res.cancelled["a/s"]
    assert reason.startswith("conflict C0001 duplicate_irreversible on idempotency:pay:")
    assert reason.endswith("duplicate of b/s (same irreversible tool and key)")
    assert set(res.cancelled) == {"a/s", "c/s"}


def test_duplicate_needs_the_same_tool_and_key():
    res = run(plan("a", step("s", "pay", invoice=7)), plan("b", step("s", "pay", invoice=8)),
              plan("c", step("s", "noop", invoice=7)))
    assert res.conflicts == ()


def test_duplicate_by_given_idempotency_key_even_with_different_args():
    res = run(plan("a", step("s", "pay", key="inv-7", invoice=7)),
              plan("b", step("s", "pay", key="inv-7", invoice=8)))
    (rec,) = res.conflicts
    assert rec.resource == "idempotency:pay:inv-7" and set(res.cancelled) == {"b/s"}


def test_reversible_tools_are_never_duplicates():
    res = run(plan("a", step("s", "noop", n=1)), plan("b", step("s", "noop", n=1)))
    assert res.conflicts == ()


def test_ledger_key_started_in_an_earlier_run_cancels_every_call_of_it():
    res = run(plan("a", step("s", "pay", key="k")), plan("b", step("s", "pay", key="k")),
              ledger={("pay", "k"): "old/s"})
    assert res.cancelled == {
        "a/s": "conflict C0001 duplicate_irreversible on idempotency:pay:k: already started live by old/s in an earlier run",
        "b/s": "conflict C0001 duplicate_irreversible on idempotency:pay:k: already started live by old/s in an earlier run",
    }
    assert res.conflicts[0].detail["ledger_holder"] == "old/s"


def test_ledger_holder_resuming_itself_is_not_its_own_duplicate():
    res = run(plan("a", step("s", "pay", key="k")), ledger={("pay", "k"): "a/s"})
    assert res.conflicts == () and res.cancelled == {}
    res = run(plan("a", step("s", "pay", key="k")), plan("b", step("s", "pay", key="k")),
              ledger={("pay", "k"): "a/s"})
    assert list(res.cancelled) == ["b/s"] and res.conflicts[0].detail["kept"] == "a/s"


def test_ledger_only_counts_the_same_tool():
    res = run(plan("a", step("s", "pay", key="k")), ledger={("other", "k"): "old/s"})
    assert res.conflicts == ()


def test_duplicate_irreversible_serialize_chains_the_duplicates():
    res = run(plan("a", step("s", "pay", key="k")), plan("b", step("s", "pay", key="k")),
              duplicate_irreversible="serialize")
    (rec,) = res.conflicts
    assert rec.outcome == "serialized" and res.order_edges == (("a/s", "b/s"),)
    assert res.cancelled == {}


def test_duplicate_irreversible_escalate():
    res = run(plan("a", step("s", "pay", key="k")), plan("b", step("s", "pay", key="k")),
              duplicate_irreversible="escalate")
    (esc,) = res.escalations
    assert esc.call_ids == ("a/s", "b/s") and res.order_edges == (("a/s", "b/s"),)


def test_ledger_key_under_escalate_asks_even_for_a_single_call():
    res = run(plan("a", step("s", "pay", key="k")), ledger={("pay", "k"): "old/s"},
              duplicate_irreversible="escalate")
    (esc,) = res.escalations
    assert esc.call_ids == ("a/s",) and res.conflicts[0].detail["ledger_holder"] == "old/s"


# ------------------------------------------------------- mutually_exclusive


def test_mutually_exclusive_priority_side_with_the_top_call_wins():
    # fs.delete names fs.touch: exclusive on the shared file, whichever declares it.
    res = run(plan("d", step("s", "fs.delete", path="x"), priority=1),
              plan("t", step("s", "fs.touch", path="x"), priority=6),
              plan("t2", step("s", "fs.touch", path="x"), priority=0))
    mx = of_type(res, "mutually_exclusive")
    assert len(mx) == 1 and mx[0].resource == "file:x" and mx[0].detail["tools"] == ["fs.delete", "fs.touch"]
    assert res.cancelled == {
        "d/s": "conflict C0001 mutually_exclusive on file:x: lost to t/s (priority 6 > 1)"}
    assert of_type(res, "read_write") == []  # the writer is gone before read_write looks


def test_mutually_exclusive_needs_a_shared_resource():
    res = run(plan("d", step("s", "fs.delete", path="x")), plan("t", step("s", "fs.touch", path="y")))
    assert res.conflicts == ()


def test_mutually_exclusive_tie_escalates():
    res = run(plan("d", step("s", "fs.delete", path="x"), priority=2),
              plan("t", step("s", "fs.touch", path="x"), priority=2))
    mx = of_type(res, "mutually_exclusive")[0]
    assert mx.outcome == "escalated" and mx.strategy == "priority"
    assert any(e.conflict_id == mx.id and e.call_ids == ("d/s", "t/s") for e in res.escalations)


def test_mutually_exclusive_serialize_and_escalate():
    res = run(plan("d", step("s", "fs.delete", path="x")), plan("t", step("s", "fs.touch", path="x")),
              mutually_exclusive="serialize")
    mx = of_type(res, "mutually_exclusive")[0]
    assert mx.outcome == "serialized" and ("d/s", "t/s") in res.order_edges
    res = run(plan("d", step("s", "fs.delete", path="x")), plan("t", step("s", "fs.touch", path="x")),
              mutually_exclusive="escalate", read_write="serialize")
    mx = of_type(res, "mutually_exclusive")[0]
    assert [e.conflict_id for e in res.escalations] == [mx.id]


def test_mutually_exclusive_tools_without_resources_conflict_on_the_tool_pair():
    res = run(plan("a", step("s", "gpu.render", job=1), priority=3),
              plan("b", step("s", "gpu.train", job=2), priority=1),
              plan("c", step("s", "gpu.train", job=3), priority=1))
    (rec,) = res.conflicts
    assert rec.resource == "tools:gpu.render|gpu.train" and rec.calls == ("a/s", "b/s", "c/s")
    assert set(res.cancelled) == {"b/s", "c/s"}


def test_mutually_exclusive_one_side_alone_is_no_conflict():
    res = run(plan("b", step("s", "gpu.train", job=2)), plan("c", step("s", "gpu.train", job=3)))
    assert res.conflicts == ()


# ----------------------------------------------------------------- capacity


def test_capacity_is_recorded_and_queued_without_edges():
    res = run(*(plan(p, step("s", "slot", n=i)) for i, p in enumerate("abc")))
    (rec,) = res.conflicts
    assert (rec.type, rec.resource, rec.strategy, rec.outcome) == (
        "capacity", "tool:slot", "serialize", "queued (max_concurrency 2)")
    assert rec.calls == ("a/s", "b/s", "c/s") and res.order_edges == ()
    res = run(*(plan(p, step("s", "slot", n=i)) for i, p in enumerate("ab")))
    assert res.conflicts == ()


# ------------------------------------------------------------- interactions


def test_cancelled_duplicate_does_not_win_write_write():
    cat = Catalog(tools=(tool("w", writes=["file:{path}"]), tool("wx", reversible=False, writes=["file:{path}"])))
    res = run(plan("keep", step("s", "wx", key="k", path="other"), priority=10),
              plan("dup", step("s", "wx", key="k", path="x"), priority=9),
              plan("low", step("s", "w", path="x"), priority=1),
              write_write="priority", catalog=cat)
    assert "dup/s" in res.cancelled and "duplicate of keep/s" in res.cancelled["dup/s"]
    assert "low/s" not in res.cancelled  # dup/s would have beaten it, but it is gone
    assert of_type(res, "write_write") == []


def test_chain_never_runs_through_a_call_a_later_type_cancels():
    # write_write serialize on x: a, b, c; read_write priority on y cancels b, which reads y
    # (the writer of y has the higher priority). The chain on x must link a -> c directly.
    res = run(plan("a", step("s", "w", path="x"), priority=5),
              plan("b", step("s", "cp", src="y", dst="x"), priority=4),
              plan("c", step("s", "w", path="x"), priority=3),
              plan("r", step("s", "w", path="y"), priority=8),
              read_write="priority")
    assert set(res.cancelled) == {"b/s"}
    assert res.order_edges == (("a/s", "c/s"),)
    ww = of_type(res, "write_write")[0]
    assert ww.calls == ("a/s", "c/s")


def test_records_are_numbered_by_first_appearance_then_type_order():
    res = run(plan("a", step("s", "cp", src="y", dst="x"), step("t", "pay", key="k")),
              plan("b", step("s", "w", path="x"), step("t", "w", path="y"), step("u", "pay", key="k")),
              plan("c", step("s", "r", path="x")),
              duplicate_irreversible="serialize")
    got = [(c.id, c.resource, c.type) for c in res.conflicts]
    assert got == [
        ("C0001", "file:y", "read_write"),   # a/s touches y first (reads come first)
        ("C0002", "file:x", "write_write"),
        ("C0003", "file:x", "read_write"),
        ("C0004", "idempotency:pay:k", "duplicate_irreversible"),  # synthetic, after a/s's real ones
    ]


def test_hot_resource_costs_k_minus_one_edges():
    res = run(*(plan(f"p{i}", step("s", "w", path="hot")) for i in range(1500)))
    (rec,) = res.conflicts
    assert len(rec.calls) == 1500 and len(res.order_edges) == 1499


def test_same_input_same_records_edges_and_order():
    batch = [plan("a", step("s", "w", path="x"), step("t", "pay", key="k")),
             plan("b", step("s", "r", path="x"), step("t", "pay", key="k"), priority=2),
             plan("c", step("s", "fs.delete", path="x"), step("t", "fs.touch", path="x"))]
    first, second = run(*batch), run(*batch)
    assert first == second


# ------------------------------------------------------------- detect() alone


def test_detect_works_without_intake_and_orders_by_chain_key():
    res = run(plan("a", step("s", "w", path="x")), plan("b", step("s", "w", path="x"), priority=1))
    again = detect(res.calls, res.rejected, Policy())
    assert again.order_edges == res.order_edges and again.records == res.conflicts
    assert [res.calls[i].call_id for i in chain_order(res.calls)] == ["b/s", "a/s"]


@pytest.mark.parametrize("kind", list(ConflictType))
def test_allowed_strategies_match_the_policy_schema(kind):
    assert ALLOWED_STRATEGIES[kind]
    if kind in (ConflictType.CAPACITY,):
        assert ALLOWED_STRATEGIES[kind] == {S.SERIALIZE}
    if kind is ConflictType.DEPENDENCY:
        assert ALLOWED_STRATEGIES[kind] == {S.ESCALATE}


def test_a_strategy_a_type_does_not_allow_falls_back_to_ordering_never_cancelling():
    res = run(plan("a", step("s", "w", path="x")), plan("b", step("s", "w", path="x"), priority=1),
              write_write="deduplicate")
    assert res.cancelled == {} and res.order_edges == (("b/s", "a/s"),)
    assert res.conflicts[0].strategy == "serialize"
