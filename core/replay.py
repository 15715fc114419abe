"""Replaying a transition log against the controller definition (I10).

Every call starts in ``proposed`` and the system ``unlocked``; each record
must be an edge of its machine (``TRANSITIONS`` / ``SYSTEM_TRANSITIONS``)
leaving the state the replay holds for it. A bad record is reported with its
seq and the replay follows the log's ``to`` anyway, so one bad record yields
one problem, not a cascade. Guards are not re-evaluated: the log does not
carry the policy's inputs; the decision provenance in ``detail`` does.

The summary's per-call final states, counts by state and lock state must
match the replay. Metrics are compared by ``compare_metrics`` once they are
recomputed from the execution log (``interlock.core.monitor``).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any, Iterable, Sequence

import attrs

from interlock.core.controller.states import (
    FINAL,
    INITIAL,
    SYSTEM_TRANSITIONS,
    TRANSITIONS,
    SystemState,
)


def _edges(table: list[dict]) -> frozenset[tuple[str, str, str]]:
    out = set()
    for t in table:
        sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
        for src in sources:
            out.add((str(src), t["trigger"], str(t["dest"])))
    return frozenset(out)


#: (from, trigger, to) of every edge, whatever its guards.
CALL_EDGES = _edges(TRANSITIONS)
SYSTEM_EDGES = _edges(SYSTEM_TRANSITIONS)
_FINAL = frozenset(str(s) for s in FINAL)


@attrs.frozen
class ReplayResult:
    final_states: dict[str, str]  # call id -> state, in order of first appearance
    lock_state: str
    problems: list[str]

    def counts_by_state(self) -> dict[str, int]:
        return dict(sorted(Counter(self.final_states.values()).items()))


def replay_states(lines: Sequence[dict[str, Any]]) -> ReplayResult:
    """Rebuild every call's state and the lock state from log records, in order."""
    states: dict[str, str] = {}
    lock = str(SystemState.UNLOCKED)
    problems: list[str] = []
    for rec in lines:
        seq = rec.get("seq", "?")
        src, trigger, dst = rec.get("from"), rec.get("trigger"), rec.get("to")
        machine = rec.get("machine")
        if machine == "call":
            call = rec.get("call_id")
            if not isinstance(call, str) or not call:
                problems.append(f"seq {seq}: a call transition without a call_id")
                continue
            current = states.get(call, str(INITIAL))
            if (src, trigger, dst) not in CALL_EDGES:
                problems.append(
                    f"seq {seq}: call {call}: {src} --{trigger}--> {dst} is not an edge of the controller"
                )
            elif src != current:
                problems.append(f"seq {seq}: call {call}: leaves {src} but the replay has it in {current}")
            states[call] = dst if isinstance(dst, str) else current
        elif machine == "system":
            if (src, trigger, dst) not in SYSTEM_EDGES:
                problems.append(f"seq {seq}: system: {src} --{trigger}--> {dst} is not an edge of the lock machine")
            elif src != lock:
                problems.append(f"seq {seq}: system: leaves {src} but the replay has it {lock}")
            lock = dst if isinstance(dst, str) else lock
        elif machine == "policy":
            # An auto_tune change of a live threshold (I14): audited, no state to replay.
            if trigger != "tune":
                problems.append(f"seq {seq}: policy: trigger {trigger!r} (expected tune)")
        else:
            problems.append(f"seq {seq}: unknown machine {machine!r} (expected call, system or policy)")
    for call, state in states.items():
        if state not in _FINAL:
            problems.append(f"call {call}: the log ends with it in {state}, not a final state (I9)")
    return ReplayResult(states, lock, problems)


def compare_with_summary(result: ReplayResult, summary: dict[str, Any]) -> list[str]:
    """Differences between the replay and orchestration_summary.json (empty: they match)."""
    diffs: list[str] = []
    rows = summary.get("calls") or []
    summary_states = {row.get("call_id"): row.get("final_state") for row in rows}
    for call, state in summary_states.items():
        replayed = result.final_states.get(call)
        if replayed is None:
            diffs.append(f"call {call}: summary says {state}, the log has no transition for it")
        elif replayed != state:
            diffs.append(f"call {call}: summary says {state}, the log replays to {replayed}")
    for call, state in result.final_states.items():
        if call not in summary_states:
            diffs.append(f"call {call}: in the log (replays to {state}) but not in the summary")
    replayed_counts = result.counts_by_state()
    stated_counts = {k: v for k, v in ((summary.get("counts") or {}).get("by_state") or {}).items() if v}
    for state in sorted(set(replayed_counts) | set(stated_counts)):
        a, b = stated_counts.get(state, 0), replayed_counts.get(state, 0)
        if a != b:
            diffs.append(f"counts.by_state.{state}: summary says {a}, the log replays to {b}")
    lock = (summary.get("lock") or {}).get("state")
    if lock is not None and lock != result.lock_state:
        diffs.append(f"lock: summary says {lock}, the log replays to {result.lock_state}")
    return diffs


def _close(a: Any, b: Any, tol: float) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
    return a == b


def compare_metrics(recomputed: dict[str, Any], stated: dict[str, Any], *, tol: float = 1e-9) -> list[str]:
    """Differences between metrics recomputed from the logs and those a summary states.

    Numbers compare within ``tol`` (a recomputation may sum in another order);
    ``null`` only equals ``null``; nested dicts (``execution_latency_ms``) by key.
    ``null_reasons`` is explanatory text and is not compared.
    """
    diffs: list[str] = []

    def walk(prefix: str, a: dict[str, Any], b: dict[str, Any]) -> None:
        for key in sorted(set(a) | set(b)):
            if key == "null_reasons":
                continue
            name = f"{prefix}{key}"
            if key not in a or key not in b:
                diffs.append(f"metrics.{name}: only in the {'summary' if key in b else 'recomputation'}")
            elif isinstance(a[key], dict) and isinstance(b[key], dict):
                walk(f"{name}.", a[key], b[key])
            elif not _close(a[key], b[key], tol):
                diffs.append(f"metrics.{name}: summary says {json.dumps(b[key])}, the logs give {json.dumps(a[key])}")

    walk("", recomputed, stated)
    return diffs


def parse_jsonl(lines: Iterable[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Records of JSONL text lines, and a problem for each line that is not a JSON object."""
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            problems.append(f"line {i}: not valid JSON ({exc.msg})")
            continue
        if isinstance(rec, dict):
            records.append(rec)
        else:
            problems.append(f"line {i}: not a JSON object")
    return records, problems


__all__ = [
    "CALL_EDGES", "SYSTEM_EDGES", "ReplayResult", "compare_metrics", "compare_with_summary",
    "parse_jsonl", "replay_states",
]
