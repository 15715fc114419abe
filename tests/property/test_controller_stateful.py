"""Stateful property tests of the controller against an oracle written from the SPEC.

The system under test is what the orchestrator does per event: ``decide()``
at that moment, ``guard_set()``, ``CONTROLLER.fire()`` on a slotted record,
and ``SYSTEM.fire()`` for the lock. The oracle is a separate, plain reading
of SPEC section 2 (permissions, the dispatch ladder, on_denied, retries,
lost outcomes, the saga, resolve) that does not look at ``TRANSITIONS``.
Invariants I1, I2, I3, I8 and I9 are checked after every step.
"""

from __future__ import annotations

import math

import attrs
import pytest
from hypothesis import given, strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from interlock.core.controller.decision import decide
from interlock.core.controller.guards import guard_set
from interlock.core.controller.machine import CONTROLLER, SYSTEM
from interlock.core.controller.states import FINAL, MODE_OF_STATE, TERMINAL, Guard, State, SystemState
from interlock.core.errors import InvalidTransition
from interlock.core.model import (
    ApprovalPolicy, LockMode, Mode, OnDenied, Policy, Risk, Threshold, ToolContract, ToolOverride,
)

S = State
RUNNING = {S.RUNNING_MOCK: Mode.MOCK, S.RUNNING_DRY_RUN: Mode.DRY_RUN, S.RUNNING_LIVE: Mode.LIVE}
EVENTS = {  # event -> trigger
    "accept": "accept", "reject": "reject", "release": "release", "dispatch": "dispatch",
    "approve": "approve", "deny": "deny", "timeout": "deny", "gate_error": "deny",
    "succeed": "succeed", "fail": "fail", "lose": "lose", "rollback": "rollback",
    "rollback_ok": "rollback_ok", "rollback_error": "rollback_error",
    "resolve_ok": "resolve", "resolve_failed": "resolve", "cancel": "cancel",
}
TOOLS = ("t", "t.denied", "t.live_override", "t.approval", "t.no_approval")


# --------------------------------------------------------------------------
# Strategies: valid policies (monotone thresholds), contracts, confidences
# --------------------------------------------------------------------------

GRID = st.one_of(st.sampled_from([0.0, 0.1, 0.25, 0.3, 0.5, 0.75, 0.9, 1.0]),
                 st.floats(0.0, 1.0, allow_nan=False))


@st.composite
def policies(draw) -> Policy:
    dry = sorted(draw(st.lists(GRID, min_size=3, max_size=3)))
    live, floor = [], 0.0
    for d in dry:
        floor = max(floor, d, draw(GRID))
        live.append(floor)
    thresholds = {r: Threshold(dry_run=dry[i], live=live[i]) for i, r in enumerate(Risk)}
    tools = {}
    if draw(st.booleans()):
        tools = {"t.denied": ToolOverride(deny=True),
                 "t.live_override": ToolOverride(live=draw(GRID)),
                 "t.approval": ToolOverride(approval=True),
                 "t.no_approval": ToolOverride(approval=False)}
    return Policy(
        allow_live=draw(st.sampled_from([True, False, True])),  # LIVE is where the rules bite
        lock_mode=draw(st.sampled_from(LockMode)),
        thresholds=thresholds,
        approval=ApprovalPolicy(required_for=tuple(draw(st.sets(st.sampled_from(Risk)))),
                                on_denied=draw(st.sampled_from(OnDenied))),
        tools=tools,
    )


contracts = st.builds(
    ToolContract, name=st.sampled_from(TOOLS), risk=st.sampled_from(Risk),
    supports_dry_run=st.booleans(), reversible=st.booleans(), idempotent=st.booleans(),
    retries=st.integers(0, 2),
)


def threshold_points(policy: Policy) -> list[float]:
    """Every threshold of the policy and its float neighbours: the edges of I1/I3."""
    pts = {0.0, 1.0}
    values = [t.dry_run for t in policy.thresholds.values()] + [t.live for t in policy.thresholds.values()]
    values += [o.live for o in policy.tools.values() if o.live is not None]
    for v in values:
        pts |= {v, math.nextafter(v, -math.inf), math.nextafter(v, math.inf)}
    return sorted(p for p in pts if 0.0 <= p <= 1.0)


# --------------------------------------------------------------------------
# The oracle: SPEC section 2, written out plainly
# --------------------------------------------------------------------------


def spec_permissions(policy: Policy, c: ToolContract, conf: float, locked: bool) -> tuple[bool, bool, bool]:
    """(LIVE permitted, DRY_RUN permitted, approval required) as SPEC section 2 words them."""
    ov = policy.tools.get(c.name)
    th = policy.thresholds[c.risk]
    live_t = ov.live if ov and ov.live is not None else th.live
    dry_t = ov.dry_run if ov and ov.dry_run is not None else th.dry_run
    denied = bool(ov and ov.deny)
    approval = ov.approval if ov and ov.approval is not None else c.risk in policy.approval.required_for
    live = not locked and policy.allow_live and not denied and conf >= live_t
    dry = ((not locked or policy.lock_mode is LockMode.DRY_RUN) and not denied
           and c.supports_dry_run and conf >= dry_t)
    return live, dry, approval


def oracle_next(state: State, event: str, *, live: bool, dry: bool, approval: bool, granted: bool,
                on_denied: OnDenied, retries_left: int, mode: Mode | None, idempotent: bool,
                reversible: bool) -> State | None:
    """The next state, or None when the event is not allowed (nothing changes)."""
    if event == "cancel":
        return S.CANCELLED if state in (S.PROPOSED, S.WAITING, S.READY, S.AWAITING_APPROVAL) else None
    if state is S.PROPOSED:
        return {"accept": S.WAITING, "reject": S.REJECTED}.get(event)
    if state is S.WAITING:
        return S.READY if event == "release" else None
    if state is S.READY and event == "dispatch":
        if live and approval and not granted:
            return S.AWAITING_APPROVAL
        return S.RUNNING_LIVE if live else S.RUNNING_DRY_RUN if dry else S.RUNNING_MOCK
    if state is S.AWAITING_APPROVAL:
        if event == "approve":  # LIVE re-checked at the moment of the grant
            return S.RUNNING_LIVE if live else S.RUNNING_DRY_RUN if dry else S.RUNNING_MOCK
        if event in ("deny", "timeout", "gate_error"):  # fail closed: all three follow on_denied
            if on_denied is OnDenied.CANCEL:
                return S.CANCELLED
            return S.RUNNING_DRY_RUN if (on_denied is OnDenied.DRY_RUN and dry) else S.RUNNING_MOCK
        return None
    if state in RUNNING:
        retry = retries_left > 0 and (mode is not Mode.LIVE or idempotent)
        if event == "succeed":
            return S.SUCCEEDED
        if event == "fail":
            return S.READY if retry else S.FAILED
        if event == "lose":
            if state is S.RUNNING_LIVE and not idempotent:
                return S.OUTCOME_UNKNOWN
            return S.READY if retry else S.FAILED
        return None
    if state is S.OUTCOME_UNKNOWN:
        return {"resolve_ok": S.SUCCEEDED, "resolve_failed": S.FAILED}.get(event)
    if state is S.SUCCEEDED:
        return S.ROLLING_BACK if (event == "rollback" and mode is Mode.LIVE and reversible) else None
    if state is S.ROLLING_BACK:
        return {"rollback_ok": S.ROLLED_BACK, "rollback_error": S.ROLLBACK_FAILED}.get(event)
    return None


# --------------------------------------------------------------------------
# Per-call records (slotted, as the orchestrator keeps them)
# --------------------------------------------------------------------------


class Rec:
    __slots__ = ("call_id", "contract", "conf", "state", "granted", "retries_left", "mode")

    def __init__(self, call_id: str, contract: ToolContract, conf: float) -> None:
        self.call_id, self.contract, self.conf = call_id, contract, conf
        self.state, self.granted, self.retries_left, self.mode = S.PROPOSED, False, contract.retries, None

    def copy(self) -> Rec:
        r = Rec(self.call_id, self.contract, self.conf)
        r.state, r.granted, r.retries_left, r.mode = self.state, self.granted, self.retries_left, self.mode
        return r


def sut_fire(rec: Rec, event: str, policy: Policy, locked: bool) -> State:
    """What the orchestrator does for one event; raises InvalidTransition with ``rec`` untouched."""
    trigger = EVENTS[event]
    c = rec.contract
    d = decide(c, rec.conf, policy, locked=locked)
    if trigger in ("dispatch", "approve", "deny"):
        guards = guard_set(d, approval_granted=rec.granted or trigger == "approve",
                           on_denied=policy.approval.on_denied)
    elif trigger in ("fail", "lose"):
        guards = guard_set(None, retries_left=rec.retries_left, mode=rec.mode, idempotent=c.idempotent)
    elif trigger == "rollback":
        guards = guard_set(None, mode=rec.mode, reversible=c.reversible)
    elif trigger == "resolve":
        guards = guard_set(None, resolved_succeeded=event == "resolve_ok")
    else:
        guards = frozenset()
    dst = CONTROLLER.fire(rec.state, trigger, guards, call_id=rec.call_id)
    if trigger == "approve":
        rec.granted = True
    if dst is S.READY and rec.state in RUNNING:
        rec.retries_left -= 1
    if dst in RUNNING:
        rec.mode = RUNNING[dst]
    rec.state = dst
    return dst


def mode_from_ready(policy: Policy, c: ToolContract, conf: float, locked: bool, granted: bool) -> int:
    """The mode a ready call runs in (-1: never runs) with the gate's answer ``granted``."""
    rec = Rec("probe", c, conf)
    rec.state = S.READY
    dst = sut_fire(rec, "dispatch", policy, locked)
    if dst is S.AWAITING_APPROVAL:
        dst = sut_fire(rec, "approve" if granted else "deny", policy, locked)
    return MODE_OF_STATE.get(dst, -1)


def apply_both(sut: Rec, model: Rec, event: str, policy: Policy, locked: bool, entries: list) -> State | None:
    """One event on the system under test and on the oracle; they must agree.

    Entries into a running state are appended to ``entries`` with the facts of
    that moment: (call, dst, locked, lock_mode, LIVE permitted, approval required,
    granted before)."""
    c = model.contract
    live, dry, approval = spec_permissions(policy, c, model.conf, locked)
    granted_before = model.granted or event == "approve"
    expected = oracle_next(model.state, event, live=live, dry=dry, approval=approval, granted=granted_before,
                           on_denied=policy.approval.on_denied, retries_left=model.retries_left,
                           mode=model.mode, idempotent=c.idempotent, reversible=c.reversible)
    before = (sut.state, sut.granted, sut.retries_left, sut.mode)
    if expected is None:
        with pytest.raises(InvalidTransition):
            sut_fire(sut, event, policy, locked)
        assert (sut.state, sut.granted, sut.retries_left, sut.mode) == before  # nothing changed
        return None
    got = sut_fire(sut, event, policy, locked)
    assert got is expected, (model.state, event, got, expected)
    if got in RUNNING:
        entries.append((model.call_id, got, locked, policy.lock_mode, live, approval, granted_before))
    if event == "approve":
        model.granted = True
    if expected is S.READY and model.state in RUNNING:
        model.retries_left -= 1
    if expected in RUNNING:
        model.mode = RUNNING[expected]
    model.state = expected
    return got


def drain_bound(rec: Rec) -> int:
    return 4 + 3 * (rec.retries_left + 1) + 3


# --------------------------------------------------------------------------
# The state machine
# --------------------------------------------------------------------------


class ControllerAgainstOracle(RuleBasedStateMachine):
    calls = Bundle("calls")

    @initialize(policy=policies(), locked=st.sampled_from([False, True, False]))
    def setup(self, policy: Policy, locked: bool) -> None:
        self.policy = policy
        self.system = SystemState.LOCKED if locked else SystemState.UNLOCKED
        self.sut: dict[str, Rec] = {}
        self.model: dict[str, Rec] = {}
        self.entries: list[tuple] = []  # (call, dst, locked, lock_mode, spec live, approval, granted before)
        self.points = threshold_points(policy)
        self.checked: set[tuple] = set()  # (invariant, facts) already checked: they are pure

    @property
    def locked(self) -> bool:
        return self.system is SystemState.LOCKED

    @rule(target=calls, contract=contracts, data=st.data())
    def propose(self, contract: ToolContract, data) -> str:
        conf = data.draw(st.one_of(st.sampled_from(self.points), st.just(1.0), st.floats(0.0, 1.0)),
                         label="confidence")
        cid = f"c{len(self.sut)}"
        self.sut[cid] = Rec(cid, contract, conf)
        self.model[cid] = Rec(cid, contract, conf)
        return cid

    def _apply(self, cid: str, event: str) -> None:
        apply_both(self.sut[cid], self.model[cid], event, self.policy, self.locked, self.entries)

    @rule(cid=calls, data=st.data())
    def step(self, cid: str, data) -> None:
        """A legal event for the call's state (what the outside world can send)."""
        m = self.model[cid]
        by_state = {
            S.PROPOSED: ["accept", "reject", "cancel"], S.WAITING: ["release", "cancel"],
            S.READY: ["dispatch", "cancel"],
            S.AWAITING_APPROVAL: ["approve", "deny", "timeout", "gate_error", "cancel"],
            S.SUCCEEDED: ["rollback"], S.ROLLING_BACK: ["rollback_ok", "rollback_error"],
            S.OUTCOME_UNKNOWN: ["resolve_ok", "resolve_failed"],
        }
        options = by_state.get(m.state) or (["succeed", "fail", "lose"] if m.state in RUNNING else ["cancel"])
        self._apply(cid, data.draw(st.sampled_from(options), label="event"))

    @rule(cid=calls)
    def intake_and_dispatch(self, cid: str) -> None:
        """accept, release and dispatch in a row: gets calls to the interesting states fast."""
        for state, event in ((S.PROPOSED, "accept"), (S.WAITING, "release"), (S.READY, "dispatch")):
            if self.model[cid].state is state:
                self._apply(cid, event)

    @rule(cid=calls, event=st.sampled_from(sorted(EVENTS)))
    def any_event(self, cid: str, event: str) -> None:
        """Any event at all: an invalid one raises InvalidTransition and changes nothing."""
        self._apply(cid, event)

    @rule(cid=calls, answer=st.sampled_from(["approve", "deny", "timeout"]))
    def lock_while_awaiting_approval(self, cid: str, answer: str) -> None:
        """Rule 4: the system locks while an approval request is pending; the answer
        comes after, and LIVE must be re-checked at that moment."""
        self.intake_and_dispatch(cid)
        if self.model[cid].state is S.AWAITING_APPROVAL:
            self.system = SYSTEM.fire(self.system, "lock")
            self._apply(cid, answer)

    @rule()
    def lock(self) -> None:
        self.system = SYSTEM.fire(self.system, "lock")
        assert self.system is SystemState.LOCKED

    @rule()
    def unlock(self) -> None:
        if self.system is SystemState.UNLOCKED:
            with pytest.raises(InvalidTransition):
                SYSTEM.fire(self.system, "unlock")
            assert self.system is SystemState.UNLOCKED
        else:
            self.system = SYSTEM.fire(self.system, "unlock")
            assert self.system is SystemState.UNLOCKED

    # -- invariants --------------------------------------------------------

    @invariant()
    def sut_matches_oracle(self) -> None:
        for cid, m in getattr(self, "model", {}).items():
            s = self.sut[cid]
            assert (s.state, s.granted, s.retries_left, s.mode) == (m.state, m.granted, m.retries_left, m.mode)

    @invariant()
    def decide_agrees_with_spec(self) -> None:
        for m in getattr(self, "model", {}).values():
            d = decide(m.contract, m.conf, self.policy, locked=self.locked)
            assert (d.live_permitted, d.dry_run_permitted, d.approval_required) == \
                spec_permissions(self.policy, m.contract, m.conf, self.locked)

    @invariant()
    def i1_i2_on_every_entry_into_a_running_state(self) -> None:
        check_entries(getattr(self, "entries", []))

    @invariant()
    def i3_monotone(self) -> None:
        for cid, m in getattr(self, "model", {}).items():
            if self._first_time("I3", cid, self.locked):
                self._check_monotone(m.contract, m.conf)

    def _first_time(self, *key) -> bool:
        """Invariant checks are pure in (call, record, lock): skip ones already done."""
        if key in self.checked:
            return False
        self.checked.add(key)
        return True

    def _check_monotone(self, c: ToolContract, conf: float) -> None:
        p, locked = self.policy, self.locked
        higher = [x for x in self.points if x > conf]
        variants = []
        if higher:
            variants.append(("confidence raised", p, c, higher[0], locked))
        if c.risk is not Risk.LOW:
            lower = Risk.LOW if c.risk is Risk.MEDIUM else Risk.MEDIUM
            variants.append(("risk lowered", p, attrs.evolve(c, risk=lower), conf, locked))
        if locked:
            variants.append(("unlocked", p, c, conf, False))
        if not p.allow_live:
            variants.append(("allow_live on", attrs.evolve(p, allow_live=True), c, conf, locked))
        base = decide(c, conf, p, locked=locked)
        for why, p2, c2, conf2, locked2 in variants:
            other = decide(c2, conf2, p2, locked=locked2)
            assert base.best_mode <= other.best_mode, why
            assert mode_from_ready(p, c, conf, locked, True) <= mode_from_ready(p2, c2, conf2, locked2, True), why
            asks = other.live_permitted and other.approval_required
            asked = base.live_permitted and base.approval_required
            if asks == asked:  # a denial is the gate's answer; compare like with like
                assert mode_from_ready(p, c, conf, locked, False) <= \
                    mode_from_ready(p2, c2, conf2, locked2, False), why

    @invariant()
    def i8_terminal_absorbing_and_final_exits(self) -> None:
        everything = frozenset(Guard)
        for s in getattr(self, "sut", {}).values():
            if not self._first_time("I8", s.call_id, s.state):
                continue
            if s.state in TERMINAL or s.state in (S.SUCCEEDED, S.OUTCOME_UNKNOWN):
                for trigger in CONTROLLER.triggers:
                    allowed = (s.state is S.SUCCEEDED and trigger == "rollback") or (
                        s.state is S.OUTCOME_UNKNOWN and trigger == "resolve")
                    if allowed:
                        continue
                    for guards in (frozenset(), everything):
                        with pytest.raises(InvalidTransition):
                            CONTROLLER.fire(s.state, trigger, guards, call_id=s.call_id)
                if s.state is S.SUCCEEDED:
                    assert CONTROLLER.fire(s.state, "rollback", everything) is S.ROLLING_BACK

    @invariant()
    def i9_every_call_drains_to_final(self) -> None:
        """Drive copies with the slowest legal events (the gate never answers, every
        attempt fails or is lost, the rollback fails) against the oracle: each reaches
        FINAL within a bound, and I1/I2 hold on the way."""
        drain = {S.PROPOSED: "accept", S.WAITING: "release", S.READY: "dispatch",
                 S.ROLLING_BACK: "rollback_error", S.SUCCEEDED: "rollback"}
        for cid, s in getattr(self, "sut", {}).items():
            if not self._first_time("I9", cid, s.state, s.granted, s.retries_left, s.mode, self.locked):
                continue
            for outcome, answer in (("fail", "timeout"), ("lose", "approve"), ("succeed", "deny")):
                sut, model, entries = s.copy(), self.model[cid].copy(), []
                bound, steps = drain_bound(s), 0
                while sut.state not in FINAL or (sut.state is S.SUCCEEDED and steps == 0):
                    event = drain.get(sut.state) or (answer if sut.state is S.AWAITING_APPROVAL else outcome)
                    if apply_both(sut, model, event, self.policy, self.locked, entries) is None:
                        break  # a refused rollback: the call stays succeeded
                    steps += 1
                    assert steps <= bound, f"no FINAL state after {bound} steps"
                assert sut.state in FINAL
                check_entries(entries)


def check_entries(entries: list) -> None:
    """I1 and I2 over recorded entries into running states."""
    for _cid, dst, locked, lock_mode, live, approval, granted in entries:
        if dst is S.RUNNING_LIVE:
            assert live, "I1: running_live while LIVE was not permitted"
            assert granted or not approval, "I1: running_live without a recorded grant"
            assert not locked, "I2: running_live while locked"
        if dst is S.RUNNING_DRY_RUN and locked:
            assert lock_mode is LockMode.DRY_RUN, "I2: running_dry_run while locked under mock_only"


TestControllerAgainstOracle = ControllerAgainstOracle.TestCase


# --------------------------------------------------------------------------
# Invalid triggers, on any state and valuation
# --------------------------------------------------------------------------


@given(state=st.sampled_from(State), trigger=st.sampled_from(CONTROLLER.triggers),
       guards=st.frozensets(st.sampled_from(Guard)))
def test_fire_either_moves_or_raises_without_changing_the_record(state, trigger, guards):
    rec = Rec("c", ToolContract(name="t", risk=Risk.LOW), 0.5)
    rec.state = state
    try:
        dst = CONTROLLER.fire(rec.state, trigger, guards, call_id=rec.call_id)
    except InvalidTransition as exc:
        assert rec.state is state and exc.state == state.value and exc.trigger == trigger
        assert not CONTROLLER.allowed(state, trigger, guards)
        return
    assert CONTROLLER.allowed(state, trigger, guards)
    assert state not in TERMINAL
    assert isinstance(dst, State)


@given(system=st.sampled_from(SystemState), trigger=st.sampled_from(["lock", "unlock", "dispatch"]))
def test_system_lock_machine(system, trigger):
    expected = {("lock", SystemState.UNLOCKED): SystemState.LOCKED, ("lock", SystemState.LOCKED): SystemState.LOCKED,
                ("unlock", SystemState.LOCKED): SystemState.UNLOCKED}.get((trigger, system))
    if expected is None:
        with pytest.raises(InvalidTransition):
            SYSTEM.fire(system, trigger)
    else:
        assert SYSTEM.fire(system, trigger) is expected
