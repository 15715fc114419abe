"""Replaying the transition log against the controller definition (I10)."""

from __future__ import annotations

import copy

from interlock.core.audit import chain_lines, transition_line
from interlock.core.replay import (
    CALL_EDGES,
    SYSTEM_EDGES,
    compare_metrics,
    compare_with_summary,
    parse_jsonl,
    replay_states,
)
from tests import audit_samples as sample


def log() -> list[dict]:
    return chain_lines([transition_line(t, sample.RUN_ID) for t in sample.transitions()])


def line(seq, call, src, trigger, dst, machine="call"):
    return {"seq": seq, "machine": machine, "call_id": call, "from": src, "trigger": trigger, "to": dst}


def test_edges_come_from_the_controller_definition():
    assert ("ready", "dispatch", "running_live") in CALL_EDGES
    assert ("running_mock", "succeed", "succeeded") in CALL_EDGES
    assert ("succeeded", "fail", "failed") not in CALL_EDGES
    assert ("locked", "unlock", "unlocked") in SYSTEM_EDGES
    assert ("unlocked", "unlock", "unlocked") not in SYSTEM_EDGES


def test_replay_of_a_hand_built_log_gives_every_final_state():
    result = replay_states(log())
    assert result.problems == []
    assert result.final_states == sample.FINAL
    assert result.lock_state == "locked"
    assert result.counts_by_state() == {"failed": 1, "rejected": 1, "rolled_back": 1}
    assert compare_with_summary(result, sample.summary()) == []


def test_an_edge_the_machine_does_not_have_is_reported_with_its_seq():
    lines = [
        line(0, "p/a", "proposed", "accept", "waiting"),
        line(1, "p/a", "waiting", "dispatch", "running_live"),  # skips ready: not an edge
        line(2, "p/a", "running_live", "succeed", "succeeded"),
    ]
    result = replay_states(lines)
    assert len(result.problems) == 1
    assert result.problems[0].startswith("seq 1: call p/a: waiting --dispatch--> running_live")
    assert result.final_states == {"p/a": "succeeded"}  # the replay follows the log after reporting


def test_a_record_leaving_a_state_the_call_is_not_in_is_reported():
    lines = [
        line(0, "p/a", "proposed", "accept", "waiting"),
        line(1, "p/a", "ready", "dispatch", "running_mock"),  # a valid edge, but p/a is waiting
        line(2, "p/a", "running_mock", "succeed", "succeeded"),
    ]
    result = replay_states(lines)
    assert result.problems == ["seq 1: call p/a: leaves ready but the replay has it in waiting"]


def test_a_call_must_start_in_proposed_and_end_in_a_final_state():
    result = replay_states([line(0, "p/a", "waiting", "release", "ready")])
    assert result.problems == [
        "seq 0: call p/a: leaves waiting but the replay has it in proposed",
        "call p/a: the log ends with it in ready, not a final state (I9)",
    ]


def test_terminal_states_have_no_way_out_in_a_replay():
    lines = [
        line(0, "p/a", "proposed", "reject", "rejected"),
        line(1, "p/a", "rejected", "accept", "waiting"),
    ]
    problems = replay_states(lines).problems
    assert problems[0].startswith("seq 1: call p/a: rejected --accept--> waiting is not an edge")


def test_system_lock_machine_is_replayed_too():
    lines = [
        line(0, None, "unlocked", "lock", "locked", machine="system"),
        line(1, None, "locked", "unlock", "unlocked", machine="system"),
        line(2, None, "locked", "unlock", "unlocked", machine="system"),
        line(3, None, "x", "y", "z", machine="planet"),
        {"seq": 4, "machine": "call", "from": "proposed", "trigger": "accept", "to": "waiting"},
    ]
    result = replay_states(lines)
    assert result.lock_state == "unlocked"
    assert result.problems == [
        "seq 2: system: leaves locked but the replay has it unlocked",
        "seq 3: unknown machine 'planet' (expected call, system or policy)",
        "seq 4: a call transition without a call_id",
    ]


def test_compare_with_summary_names_every_difference():
    result = replay_states(log())
    summary = copy.deepcopy(sample.summary())
    summary["calls"][1]["final_state"] = "succeeded"
    summary["calls"].append(dict(summary["calls"][0], call_id="p9/ghost"))
    del summary["calls"][2]
    summary["counts"]["by_state"] = {"failed": 1, "rejected": 1, "rolled_back": 2}
    summary["lock"]["state"] = "unlocked"
    assert compare_with_summary(result, summary) == [
        "call p1/b: summary says succeeded, the log replays to failed",
        "call p9/ghost: summary says rolled_back, the log has no transition for it",
        "call p2/c: in the log (replays to rejected) but not in the summary",
        "counts.by_state.rolled_back: summary says 2, the log replays to 1",
        "lock: summary says unlocked, the log replays to locked",
    ]


def test_zero_counts_in_the_summary_are_not_differences():
    summary = sample.summary()
    summary["counts"]["by_state"]["cancelled"] = 0
    assert compare_with_summary(replay_states(log()), summary) == []


def test_compare_metrics_tolerates_rounding_only():
    stated = sample.metrics()
    assert compare_metrics(sample.metrics(tool_success_rate=0.5 + 1e-12), stated) == []
    assert compare_metrics(sample.metrics(null_reasons={}), stated) == []
    assert compare_metrics(sample.metrics(tool_success_rate=0.6), stated) == [
        "metrics.tool_success_rate: summary says 0.5, the logs give 0.6"]
    assert compare_metrics(sample.metrics(approval_rate=0.0), stated) == [
        "metrics.approval_rate: summary says null, the logs give 0.0"]
    recomputed = sample.metrics(execution_latency_ms={"mean": 12.5, "p95": 30.0})
    assert compare_metrics(recomputed, stated) == [
        "metrics.execution_latency_ms.p95: summary says 15.0, the logs give 30.0"]
    partial = {k: v for k, v in stated.items() if k != "samples"}
    assert compare_metrics(partial, stated) == ["metrics.samples: only in the summary"]


def test_parse_jsonl_names_bad_lines():
    records, problems = parse_jsonl(['{"a": 1}', "", "{oops", "[1]"])
    assert records == [{"a": 1}]
    assert problems[0].startswith("line 3: not valid JSON") and problems[1] == "line 4: not a JSON object"
