"""Cost of the controller per call: the compiled table against its alternatives.

One call's lifecycle is propose -> accept -> release -> dispatch -> succeed,
including ``decide()`` and ``guard_set()`` for the dispatch. Compared in the
same run (absolute times on a shared machine mean little):

- interlock: ``CONTROLLER.fire`` on a slotted per-call record (N calls);
- machine-per-call: a ``transitions.Machine`` built for every call (fewer calls);
- add_model: one Machine, ``add_model`` per call, models kept as tracked calls;
- floor: the same lifecycle hand-written with plain dict lookups and an
  if-ladder on ``decide()``, no guard machinery.

Printed: µs per call for each, interlock / floor (target <= 3),
machine-per-call / interlock (target >= 20), and bytes per tracked call
(tracemalloc over N slotted records; target <= 512), with the Machine
variants' bytes per call for comparison.
"""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc

from transitions import Machine

from interlock.core.controller.decision import decide
from interlock.core.controller.guards import guard_set
from interlock.core.controller.machine import CONTROLLER, GuardModel, _transitions_kwargs
from interlock.core.controller.states import TRANSITIONS, State
from interlock.core.model import Mode, Policy, Risk, ToolContract

N = 20_000
N_MACHINE = 2_000
REPEATS = 5

S = State
POLICY = Policy(allow_live=True)
ON_DENIED = POLICY.approval.on_denied
#: A mix that reaches LIVE, DRY_RUN and MOCK (no approval: default policy asks only for high risk).
CONTRACTS = [
    (ToolContract(name="a", risk=Risk.LOW, supports_dry_run=True), 0.9),  # live
    (ToolContract(name="b", risk=Risk.MEDIUM, supports_dry_run=True), 0.5),  # dry run
    (ToolContract(name="c", risk=Risk.MEDIUM, supports_dry_run=False), 0.5),  # mock
    (ToolContract(name="d", risk=Risk.MEDIUM, supports_dry_run=True), 0.8),  # live
]
STATES = [s.value for s in State]
MACHINE_TRANSITIONS = [_transitions_kwargs(t) for t in TRANSITIONS]
MODE_OF = {S.RUNNING_MOCK: Mode.MOCK, S.RUNNING_DRY_RUN: Mode.DRY_RUN, S.RUNNING_LIVE: Mode.LIVE}


class CallRecord:
    """What the orchestrator keeps per call: state, attempt, mode and a little more."""

    __slots__ = ("call_id", "contract", "confidence", "state", "attempt", "mode", "granted", "retries_left")

    def __init__(self, call_id: str, contract: ToolContract, confidence: float) -> None:
        self.call_id = call_id
        self.contract = contract
        self.confidence = confidence
        self.state = S.PROPOSED
        self.attempt = 0
        self.mode: Mode | None = None
        self.granted = False
        self.retries_left = contract.retries


def inputs(n: int) -> list[tuple[str, ToolContract, float]]:
    return [(f"p/{i}", *CONTRACTS[i % len(CONTRACTS)]) for i in range(n)]


# --------------------------------------------------------------------------
# The four ways
# --------------------------------------------------------------------------


def run_interlock(calls, decisions=None) -> list[CallRecord]:
    """``decisions`` (precomputed) leaves decide() out, to time the machinery alone."""
    fire = CONTROLLER.fire
    records = []
    for i, (cid, contract, conf) in enumerate(calls):
        r = CallRecord(cid, contract, conf)
        r.state = fire(r.state, "accept", call_id=cid)
        r.state = fire(r.state, "release", call_id=cid)
        d = decide(contract, conf, POLICY, locked=False) if decisions is None else decisions[i]
        r.state = fire(r.state, "dispatch", guard_set(d, approval_granted=r.granted, on_denied=ON_DENIED), cid)
        r.mode = MODE_OF[r.state]
        r.attempt += 1
        r.state = fire(r.state, "succeed", call_id=cid)
        records.append(r)
    return records


FLOOR = {
    (S.PROPOSED, "accept"): S.WAITING,
    (S.WAITING, "release"): S.READY,
    (S.RUNNING_LIVE, "succeed"): S.SUCCEEDED,
    (S.RUNNING_DRY_RUN, "succeed"): S.SUCCEEDED,
    (S.RUNNING_MOCK, "succeed"): S.SUCCEEDED,
}


def run_floor(calls, decisions=None) -> list[CallRecord]:
    records = []
    for i, (cid, contract, conf) in enumerate(calls):
        r = CallRecord(cid, contract, conf)
        r.state = FLOOR[(r.state, "accept")]
        r.state = FLOOR[(r.state, "release")]
        d = decide(contract, conf, POLICY, locked=False) if decisions is None else decisions[i]
        if d.live_permitted:
            r.state = S.RUNNING_LIVE
        elif d.dry_run_permitted:
            r.state = S.RUNNING_DRY_RUN
        else:
            r.state = S.RUNNING_MOCK
        r.mode = MODE_OF[r.state]
        r.attempt += 1
        r.state = FLOOR[(r.state, "succeed")]
        records.append(r)
    return records


def _lifecycle(model: GuardModel, contract: ToolContract, conf: float) -> None:
    model.accept()
    model.release()
    d = decide(contract, conf, POLICY, locked=False)
    model.true_guards = guard_set(d, on_denied=ON_DENIED)
    model.dispatch()
    model.succeed()


def run_machine_per_call(calls) -> list:
    machines = []
    for _cid, contract, conf in calls:
        model = GuardModel()
        m = Machine(model=model, states=STATES, initial="proposed", transitions=MACHINE_TRANSITIONS,
                    auto_transitions=False, ignore_invalid_triggers=False, name="interlock.controller")
        _lifecycle(model, contract, conf)
        machines.append(m)
    return machines


def run_add_model(calls) -> list:
    m = Machine(model=None, states=STATES, initial="proposed", transitions=MACHINE_TRANSITIONS,
                auto_transitions=False, ignore_invalid_triggers=False, name="interlock.controller")
    for _cid, contract, conf in calls:
        model = GuardModel()
        m.add_model(model)
        _lifecycle(model, contract, conf)
    return m.models


# --------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------


def per_call_us(variants: dict[str, tuple], repeats: int = REPEATS) -> dict[str, float]:
    """Best µs per call of each variant ``name -> (fn, calls)``. Variants are run
    interleaved, round after round, so a load spike on a shared machine hits all
    of them alike instead of one."""
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(repeats):
        for name, (fn, calls) in variants.items():
            gc.collect()
            t0 = time.perf_counter()
            kept = fn(calls)
            best[name] = min(best[name], (time.perf_counter() - t0) / len(calls) * 1e6)
            del kept
    return best


def bytes_per_call(fn, calls) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = fn(calls)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return (after - before) / len(calls)


def check_same_outcomes() -> None:
    """All four reach the same final states and modes (so the timing compares like with like)."""
    calls = inputs(len(CONTRACTS) * 3)
    ours = [(r.state, r.mode) for r in run_interlock(calls)]
    assert ours == [(r.state, r.mode) for r in run_floor(calls)]
    assert {s for s, _m in ours} == {S.SUCCEEDED}
    assert {m for _s, m in ours} == set(Mode)
    states = [mdl.state for mdl in (m.model for m in run_machine_per_call(calls))]
    assert states == ["succeeded"] * len(calls)
    assert [mdl.state for mdl in run_add_model(calls)] == ["succeeded"] * len(calls)


def main() -> int:
    check_same_outcomes()
    big, small = inputs(N), inputs(N_MACHINE)
    decisions = [decide(c, x, POLICY, locked=False) for _i, c, x in big]
    t = per_call_us({
        "ours": (run_interlock, big),
        "floor": (run_floor, big),
        "ours_nd": (lambda cs: run_interlock(cs, decisions), big),
        "floor_nd": (lambda cs: run_floor(cs, decisions), big),
        "machine": (run_machine_per_call, small),
        "add_model": (run_add_model, small),
    })
    t_ours, t_floor, t_ours_nd, t_floor_nd = t["ours"], t["floor"], t["ours_nd"], t["floor_nd"]
    t_machine, t_add = t["machine"], t["add_model"]
    b_ours = bytes_per_call(lambda cs: [CallRecord(i, c, x) for i, c, x in cs], big)
    b_machine = bytes_per_call(run_machine_per_call, small)
    b_add = bytes_per_call(run_add_model, small)

    print(f"controller lifecycle (propose->accept->release->dispatch->succeed, with decide + guard_set)")
    print(f"  interlock compiled table  {t_ours:8.2f} us/call   (N={N:,})")
    print(f"  hand-written dict floor   {t_floor:8.2f} us/call   (N={N:,})")
    print(f"  transitions Machine/call  {t_machine:8.2f} us/call   (N={N_MACHINE:,})")
    print(f"  one Machine + add_model   {t_add:8.2f} us/call   (N={N_MACHINE:,})")
    print(f"  decisions precomputed: interlock {t_ours_nd:.2f}, floor {t_floor_nd:.2f} us/call")
    print()
    ratio_floor = t_ours / t_floor
    ratio_machine = t_machine / t_ours
    print(f"  interlock / floor               {ratio_floor:6.2f}   (target <= 3)")
    print(f"  ... machinery alone (no decide) {t_ours_nd / t_floor_nd:6.2f}   (guard_set + 4 fires vs 4 lookups)")
    print(f"  machine-per-call / interlock    {ratio_machine:6.1f}   (target >= 20)")
    print(f"  add_model / interlock           {t_add / t_ours:6.1f}")
    print()
    print(f"  bytes per tracked call: interlock record {b_ours:7.0f} B   (target <= 512)")
    print(f"                          Machine per call {b_machine:7.0f} B")
    print(f"                          add_model        {b_add:7.0f} B")
    ok = ratio_floor <= 3 and ratio_machine >= 20 and b_ours <= 512
    print("targets: " + ("met" if ok else "NOT met"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
