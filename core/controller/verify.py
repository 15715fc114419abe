"""Exhaustive model check of the controller over an abstract domain (``interlock verify``).

The domain: a few policies (the default, approval on medium and high, tool
overrides, custom thresholds with approval for every risk), each tool they
name, every risk, confidences 0, 1 and just below / at / just above each
threshold of that risk, and every combination of allow_live, locked,
lock_mode, on_denied, supports_dry_run, reversible, idempotent and retries
(0, 1). For each scenario every path of events is walked from ``proposed``:
accept / reject / cancel, release, dispatch, the approval answer (granted,
denied, timed out) with the system lock possibly toggled while a call waits
or before a retry, success / failure / lost outcomes with retries, rollback
requested or not and its result, and an operator's resolve.

Checked on every path: I1, I2, I8 (transitions out of ``succeeded`` and
``outcome_unknown``), I9 (every path ends in FINAL within a bound), plus the
retry rule of section 5 / I4 and the rollback rule I7. Checked on the whole
table: I8 (terminal states absorb every trigger under every guard valuation)
and that the compiled table agrees with the ``transitions.Machine``.
Checked across scenarios: I3 (monotone mode).

Exactness of the reduction: the controller only sees guard valuations, and
the valuations and every check above depend on a scenario only through its
*signature*: the LIVE/DRY_RUN/approval bits of ``decide()`` and the guard
sets built from it, with the system unlocked and locked, plus the initial
lock, lock_mode, on_denied, idempotent, reversible and retries. Scenarios
sharing a signature have identical paths and verdicts; each signature is
walked once and the report says how many scenarios and paths it stands for.

``run_model_check`` takes the controller, the guard function and the Machine
as parameters so tests can hand it broken ones and watch it find violations.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Callable, Iterator

import attrs
from transitions import Machine, MachineError

from interlock.core.controller.decision import Decision, decide
from interlock.core.controller.guards import guard_set
from interlock.core.controller.machine import CONTROLLER, MACHINE, SYSTEM, Controller, GuardModel
from interlock.core.controller.states import (
    FINAL,
    MODE_OF_STATE,
    TERMINAL,
    Guard,
    State,
    SystemState,
)
from interlock.core.errors import InvalidTransition
from interlock.core.model import (
    ApprovalPolicy,
    LockMode,
    Mode,
    OnDenied,
    Policy,
    Risk,
    Threshold,
    ToolContract,
    ToolOverride,
)

__all__ = ["INVARIANTS", "Report", "Scenario", "Violation", "base_policies", "run_model_check", "scenarios"]

S = State
#: Counterexamples kept per invariant (all are counted).
MAX_VIOLATIONS_KEPT = 10
#: The rank of "never runs" (cancelled): below MOCK.
NOT_RUN = -1


@attrs.frozen
class Violation:
    invariant: str
    scenario: str
    path: tuple[str, ...]
    detail: str


@attrs.frozen
class Report:
    states: int
    transitions: int  # edges of the compiled table
    scenarios: int
    signatures: int  # distinct behaviours walked
    paths_walked: int
    paths_covered: int  # paths walked x scenarios sharing each signature
    steps: int
    checks: dict[str, int]  # invariant -> checks performed
    violations: tuple[Violation, ...]  # at most MAX_VIOLATIONS_KEPT per invariant
    violation_count: int
    violations_by_invariant: dict[str, int]  # every violation counted, not only those kept
    notes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.violation_count == 0


# --------------------------------------------------------------------------
# The abstract domain
# --------------------------------------------------------------------------


def base_policies() -> list[tuple[str, Policy, tuple[str, ...]]]:
    """(name, policy, tools to try) — allow_live, lock_mode and on_denied are axes on top."""
    overrides = {
        "t.live60": ToolOverride(live=0.6),
        "t.strict": ToolOverride(dry_run=0.7, live=0.95),
        "t.denied": ToolOverride(deny=True),
        "t.approval": ToolOverride(approval=True),
        "t.no_approval": ToolOverride(approval=False),
    }
    custom = {
        Risk.LOW: Threshold(dry_run=0.2, live=0.4),
        Risk.MEDIUM: Threshold(dry_run=0.4, live=0.6),
        Risk.HIGH: Threshold(dry_run=0.6, live=0.8),
    }
    return [
        ("default", Policy(), ("t",)),
        ("approval_medium_high", Policy(approval=ApprovalPolicy(required_for=(Risk.MEDIUM, Risk.HIGH))), ("t",)),
        ("tool_overrides", Policy(tools=overrides), ("t", *overrides)),
        ("custom_thresholds_approval_all",
         Policy(thresholds=custom, approval=ApprovalPolicy(required_for=tuple(Risk))), ("t",)),
    ]


@attrs.frozen
class Scenario:
    policy: str
    tool: str
    risk: Risk
    confidence: float
    allow_live: bool
    locked: bool
    lock_mode: LockMode
    on_denied: OnDenied
    supports_dry_run: bool
    reversible: bool
    idempotent: bool
    retries: int
    #: A cache key of plain values (enum members hash in Python, strings in C).
    key: tuple = attrs.field(init=False, eq=False, repr=False, default=attrs.Factory(
        lambda s: (s.policy, s.tool, s.risk.value, s.confidence, s.allow_live, s.lock_mode.value,
                   s.on_denied.value, s.supports_dry_run, s.reversible, s.idempotent, s.retries),
        takes_self=True))

    def describe(self) -> str:
        return (f"policy={self.policy} tool={self.tool} risk={self.risk.value} conf={self.confidence!r} "
                f"allow_live={self.allow_live} locked={self.locked} lock_mode={self.lock_mode.value} "
                f"on_denied={self.on_denied.value} dry_run={self.supports_dry_run} "
                f"reversible={self.reversible} idempotent={self.idempotent} retries={self.retries}")


class _Domain:
    """Policies, contracts and decide() results, built and cached once per check.

    Cache keys use enum *values* (strings hash in C; enum members do not).
    """

    def __init__(self) -> None:
        self.bases = {name: (policy, tools) for name, policy, tools in base_policies()}
        self._policies: dict[tuple, Policy] = {}
        self._decisions: dict[tuple, Decision] = {}
        self._points: dict[tuple, tuple[tuple[float, ...], dict[float, int]]] = {}

    def policy(self, s: Scenario) -> Policy:
        key = (s.policy, s.allow_live, s.lock_mode.value, s.on_denied.value)
        p = self._policies.get(key)
        if p is None:
            base = self.bases[s.policy][0]
            p = attrs.evolve(base, allow_live=s.allow_live, lock_mode=s.lock_mode,
                             approval=attrs.evolve(base.approval, on_denied=s.on_denied))
            self._policies[key] = p
        return p

    @staticmethod
    def contract(s: Scenario) -> ToolContract:
        return ToolContract(name=s.tool, risk=s.risk, supports_dry_run=s.supports_dry_run,
                            reversible=s.reversible, idempotent=s.idempotent, retries=s.retries)

    def decide(self, s: Scenario, locked: bool) -> Decision:
        key = (s.key, locked)
        d = self._decisions.get(key)
        if d is None:
            d = decide(self.contract(s), s.confidence, self.policy(s), locked=locked)
            self._decisions[key] = d
        return d

    def points(self, policy_name: str, tool: str, risk: Risk) -> tuple[float, ...]:
        """0, 1 and just below / at / just above each threshold of ``risk`` (after overrides)."""
        return self._indexed_points(policy_name, tool, risk)[0]

    def next_point(self, s: Scenario) -> float | None:
        pts, index = self._indexed_points(s.policy, s.tool, s.risk)
        i = index[s.confidence] + 1
        return pts[i] if i < len(pts) else None

    def _indexed_points(self, policy_name: str, tool: str, risk: Risk):
        key = (policy_name, tool, risk.value)
        got = self._points.get(key)
        if got is None:
            d = decide(ToolContract(name=tool, risk=risk), 0.0, self.bases[policy_name][0], locked=False)
            pts = {0.0, 1.0}
            for t in (d.dry_run_threshold, d.live_threshold):
                pts |= {t, math.nextafter(t, -math.inf), math.nextafter(t, math.inf)}
            ordered = tuple(sorted(p for p in pts if 0.0 <= p <= 1.0))
            got = self._points[key] = (ordered, {p: i for i, p in enumerate(ordered)})
        return got


@functools.lru_cache(maxsize=1)
def scenarios() -> tuple[Scenario, ...]:
    """The whole abstract domain, in a fixed order (built once; values are immutable)."""
    domain = _Domain()
    bools = (False, True)
    out = []
    for name, (_policy, tools) in domain.bases.items():
        for tool, risk in itertools.product(tools, Risk):
            for conf in domain.points(name, tool, risk):
                for allow_live, locked, lock_mode, on_denied, sdr, rev, idem, retries in itertools.product(
                        bools, bools, LockMode, OnDenied, bools, bools, bools, (0, 1)):
                    out.append(Scenario(name, tool, risk, conf, allow_live, locked, lock_mode, on_denied,
                                        sdr, rev, idem, retries))
    return tuple(out)


def _bits(d: Decision) -> tuple[bool, bool, bool]:
    return (d.live_permitted, d.dry_run_permitted, d.approval_required)


# --------------------------------------------------------------------------
# One run of the check: the controller, guards and Machine under test
# --------------------------------------------------------------------------

GuardFn = Callable[..., frozenset]
INVARIANTS = ("I1", "I2", "I3", "I4-retry", "I7", "I8", "I9", "table=Machine")


def _step_bound(retries: int) -> int:
    """accept, release, then per attempt dispatch + answer + outcome, then resolve,
    rollback and its result: no path may be longer (I9)."""
    return 2 + 3 * (retries + 1) + 3


class _Run:
    def __init__(self, controller: Controller, guards: GuardFn, machine: Machine) -> None:
        self.controller = controller
        self.guards = guards
        self.machine = machine
        self.domain = _Domain()
        self.paths = 0
        self.steps = 0
        self.checks = dict.fromkeys(INVARIANTS, 0)
        self.violations: list[Violation] = []
        self.violation_count = 0
        self.by_invariant = dict.fromkeys(INVARIANTS, 0)
        self._modes: dict[tuple, int] = {}

    def violate(self, invariant: str, scenario: str, path: tuple[str, ...] | list[str], detail: str) -> None:
        self.violation_count += 1
        self.by_invariant[invariant] = self.by_invariant.get(invariant, 0) + 1
        if self.by_invariant[invariant] <= MAX_VIOLATIONS_KEPT:
            self.violations.append(Violation(invariant, scenario, tuple(path), detail))

    # -- signatures ---------------------------------------------------------

    def signature(self, s: Scenario) -> tuple:
        g, parts = self.guards, []
        for locked in (False, True):
            d = self.domain.decide(s, locked)
            parts.append((_bits(d), g(d, approval_granted=False, on_denied=s.on_denied),
                          g(d, approval_granted=True, on_denied=s.on_denied)))
        return (*parts, s.locked, s.lock_mode, s.on_denied, s.idempotent, s.reversible, s.retries)

    # -- I3 -----------------------------------------------------------------

    def mode(self, s: Scenario, granted: bool) -> int:
        """The mode the controller runs a ready call in (``NOT_RUN`` when cancelled),
        with the approval answer ``granted`` if it is asked."""
        d = self.domain.decide(s, s.locked)
        key = (id(d), granted)  # decisions are cached by the domain: ids are stable
        mode = self._modes.get(key)
        if mode is None:
            fire = self.controller.fire
            try:
                state = fire(S.READY, "dispatch", self.guards(d, on_denied=s.on_denied))
                if state is S.AWAITING_APPROVAL:
                    state = fire(state, "approve" if granted else "deny",
                                 self.guards(d, approval_granted=granted, on_denied=s.on_denied))
            except InvalidTransition:  # a stuck call runs nothing (the walk reports it under I9)
                state = S.CANCELLED
            mode = self._modes[key] = MODE_OF_STATE.get(state, NOT_RUN)
        return mode

    def facts(self, s: Scenario) -> tuple[int, int, int, bool]:
        """(permitted ceiling, mode if granted, mode if denied, asked for approval)."""
        d = self.domain.decide(s, s.locked)
        return (int(d.best_mode), self.mode(s, True), self.mode(s, False),
                d.live_permitted and d.approval_required)

    def check_monotone(self, all_scenarios: list[Scenario]) -> int:
        """I3. Compared per pair (s, s' one step more permissive): the permitted ceiling,
        the mode with approval granted, and the mode with approval denied. Returns the
        number of denial pairs exempted: s' was put to the approval gate and refused
        while s was never asked (on_denied: mock | cancel then lands lower, by the
        gate's decision, not the machine's)."""
        facts = {(s.key, s.locked): self.facts(s) for s in all_scenarios}
        exempt = 0
        for s in all_scenarios:
            mine = facts[(s.key, s.locked)]
            for why, key, locked in _neighbours(self.domain, s):
                theirs = facts.get((key, locked))
                if theirs is None:  # e.g. a lower risk at a confidence outside its own points
                    theirs = facts[(key, locked)] = self.facts(_from_key(key, locked))
                self.checks["I3"] += 3
                for i, what in ((0, "permitted mode"), (1, "mode with approval granted"),
                                (2, "mode with approval denied")):
                    if mine[i] <= theirs[i]:
                        continue
                    if i == 2 and theirs[3] and not mine[3]:
                        exempt += 1
                        continue
                    self.violate("I3", s.describe(), (),
                                 f"{what}: {_mode_name(mine[i])} here, {_mode_name(theirs[i])} with {why}")
        return exempt

    # -- whole table ----------------------------------------------------------

    def check_table(self) -> None:
        """I8 under every guard valuation, and the compiled table == the Machine."""
        every = _subsets(list(Guard))
        fire = self.controller.fire
        for s in (*sorted(TERMINAL, key=list(State).index), S.SUCCEEDED, S.OUTCOME_UNKNOWN):
            for t in self.controller.triggers:
                for g in every:
                    self.checks["I8"] += 1
                    try:
                        dst = fire(s, t, g)
                    except InvalidTransition:
                        continue
                    if s in TERMINAL or (s is S.SUCCEEDED and dst is not S.ROLLING_BACK) or (
                            s is S.OUTCOME_UNKNOWN and t != "resolve"):
                        self.violate("I8", "(table)", (), f"{s.value} -{t}-> {dst.value} with guards "
                                     f"{sorted(x.value for x in g)}")
        model = GuardModel()
        self.machine.add_model(model)
        try:
            for t, event in self.machine.events.items():
                relevant = sorted({c.func for ts in event.transitions.values() for tr in ts for c in tr.conditions})
                for s in State:
                    for names in _subsets(relevant):
                        guards = frozenset(Guard(n) for n in names)
                        self.machine.set_state(s.value, model)
                        model.true_guards = guards
                        try:
                            expected = model.state if model.trigger(t) else None
                        except MachineError:  # no edge from this state
                            expected = None
                        try:
                            got = fire(s, t, guards).value
                        except InvalidTransition:
                            got = None
                        self.checks["table=Machine"] += 1
                        if got != expected:
                            self.violate("table=Machine", "(table)", (),
                                         f"{s.value} -{t}->: table {got}, Machine {expected}")
        finally:
            self.machine.remove_model(model)


# --------------------------------------------------------------------------
# Walking every path of one scenario
# --------------------------------------------------------------------------


class _Walker:
    """Depth-first over every event sequence the outside world can produce."""

    def __init__(self, run: _Run, scenario: Scenario) -> None:
        self.run = run
        self.s = scenario
        self.desc = scenario.describe()
        self.decisions = {False: run.domain.decide(scenario, False), True: run.domain.decide(scenario, True)}
        self.fire = run.controller.fire
        self.g = run.guards
        self.bound = _step_bound(scenario.retries)
        self.paths = 0

    def violate(self, invariant: str, path: list[str], detail: str) -> None:
        self.run.violate(invariant, self.desc, path, detail)

    def walk(self) -> int:
        # (state, locked, granted, retries_left, mode, lock toggled, steps)
        self._visit((S.PROPOSED, self.s.locked, False, self.s.retries, None, False, 0), [])
        return self.paths

    def _events(self, st: tuple) -> list[tuple[str, str | None, frozenset]]:
        """(label, trigger | None for a lock toggle | "" to stop, guards)."""
        state, locked, granted, retries_left, mode, toggled, _steps = st
        s, g, none = self.s, self.g, frozenset()
        if state is S.PROPOSED:
            return [("accept", "accept", none), ("reject", "reject", none), ("cancel", "cancel", none)]
        if state is S.WAITING:
            return [("release", "release", none), ("cancel", "cancel", none)]
        toggle = [] if toggled else [("unlock" if locked else "lock", None, none)]
        if state is S.READY:
            guards = g(self.decisions[locked], approval_granted=granted, on_denied=s.on_denied)
            return [("dispatch", "dispatch", guards), ("cancel", "cancel", none)] + toggle
        if state is S.AWAITING_APPROVAL:
            d = self.decisions[locked]
            yes = g(d, approval_granted=True, on_denied=s.on_denied)
            no = g(d, approval_granted=False, on_denied=s.on_denied)
            return [("approval granted", "approve", yes), ("approval denied", "deny", no),
                    ("approval timed out", "deny", no), ("cancel", "cancel", none)] + toggle
        if state in MODE_OF_STATE:
            guards = g(None, retries_left=retries_left, mode=mode, idempotent=s.idempotent)
            return [("success", "succeed", none), ("failure", "fail", guards), ("lost", "lose", guards)]
        if state is S.SUCCEEDED:
            return [("end", "", none), ("rollback requested", "rollback", g(None, mode=mode, reversible=s.reversible))]
        if state is S.ROLLING_BACK:
            return [("rollback ok", "rollback_ok", none), ("rollback error", "rollback_error", none)]
        if state is S.OUTCOME_UNKNOWN:
            return [("end", "", none), ("resolved succeeded", "resolve", g(None, resolved_succeeded=True)),
                    ("resolved failed", "resolve", g(None, resolved_succeeded=False))]
        return [("end", "", none)]

    def _end(self, state: State, path: list[str]) -> None:
        self.paths += 1
        self.run.checks["I9"] += 1
        if state not in FINAL:
            self.violate("I9", path, f"path ends in non-final state {state.value!r}")

    def _visit(self, st: tuple, path: list[str]) -> None:
        state, locked, granted, retries_left, mode, toggled, steps = st
        if steps > self.bound:
            self._end(state, path)
            self.violate("I9", path, f"more than {self.bound} steps without ending")
            return
        for label, trigger, guards in self._events(st):
            if trigger == "":
                self._end(state, path)
                continue
            if trigger is None:  # an operator or the anomaly monitor toggles the system lock
                now = SYSTEM.fire(SystemState.LOCKED if locked else SystemState.UNLOCKED, label)
                self._visit((state, now is SystemState.LOCKED, granted, retries_left, mode, True, steps),
                            path + [f"system {label}"])
                continue
            self.run.steps += 1
            granted_now = granted or trigger == "approve"  # a grant is recorded before the edge it allows
            try:
                dst = self.fire(state, trigger, guards)
            except InvalidTransition:
                if trigger == "rollback":  # partial by design (I7): the call stays succeeded
                    self.run.checks["I7"] += 1
                    if mode is Mode.LIVE and self.s.reversible:
                        self.violate("I7", path + [label], "a LIVE reversible success could not be rolled back")
                    self._end(state, path + [label + " (refused)"])
                    continue
                self._end(state, path + [label])  # the call is stuck here
                self.violate("I9", path + [label], f"{trigger!r} refused in {state.value!r}: the call is stuck")
                continue
            step_path = path + [label, f"{state.value} -{trigger}-> {dst.value}"]
            self._check(state, trigger, dst, locked, granted_now, mode, step_path)
            new_mode = Mode(MODE_OF_STATE[dst]) if dst in MODE_OF_STATE else mode
            new_retries = retries_left - 1 if (dst is S.READY and state in MODE_OF_STATE) else retries_left
            self._visit((dst, locked, granted_now, new_retries, new_mode, toggled, steps + 1), step_path)

    def _check(self, src: State, trigger: str, dst: State, locked: bool, granted: bool,
               mode: Mode | None, path: list[str]) -> None:
        c, s = self.run.checks, self.s
        d = self.decisions[locked]
        if dst in MODE_OF_STATE:
            c["I1"] += 1
            c["I2"] += 1
            if dst is S.RUNNING_LIVE:
                if not d.live_permitted:
                    self.violate("I1", path, f"running_live while decide() refuses LIVE ({d.live_rule})")
                if d.approval_required and not granted:
                    self.violate("I1", path, "running_live without a recorded grant")
                if locked:
                    self.violate("I2", path, "running_live while the system is locked")
            if dst is S.RUNNING_DRY_RUN and locked and s.lock_mode is LockMode.MOCK_ONLY:
                self.violate("I2", path, "running_dry_run while locked under lock_mode: mock_only")
        if src is S.SUCCEEDED or src is S.OUTCOME_UNKNOWN or src in TERMINAL:
            c["I8"] += 1
            if src in TERMINAL:
                self.violate("I8", path, f"terminal state {src.value!r} was left")
            elif src is S.SUCCEEDED and dst is not S.ROLLING_BACK:
                self.violate("I8", path, "succeeded left for something other than rolling_back")
            elif src is S.OUTCOME_UNKNOWN and trigger != "resolve":
                self.violate("I8", path, "outcome_unknown left other than by resolve")
        if src is S.RUNNING_LIVE and trigger in ("fail", "lose"):
            c["I4-retry"] += 1
            if dst is S.READY and not s.idempotent:
                self.violate("I4-retry", path, "a non-idempotent LIVE call was retried")
            if trigger == "lose" and (dst is S.OUTCOME_UNKNOWN) == s.idempotent:
                self.violate("I4-retry", path, "a lost LIVE call: outcome_unknown iff not idempotent")
        if trigger == "rollback":
            c["I7"] += 1
            if not (mode is Mode.LIVE and s.reversible):
                self.violate("I7", path, f"rolled back a {mode} call (reversible={s.reversible})")


# --------------------------------------------------------------------------
# Helpers for I3
# --------------------------------------------------------------------------


def _subsets(items: list) -> list[frozenset]:
    return [frozenset(c) for r in range(len(items) + 1) for c in itertools.combinations(items, r)]


# Positions in Scenario.key.
_K_RISK, _K_CONF, _K_ALLOW_LIVE, _K_LOCK_MODE = 2, 3, 4, 5
_LOWER_RISK = {"medium": "low", "high": "medium"}


def _neighbours(domain: _Domain, s: Scenario) -> Iterator[tuple[str, tuple, bool]]:
    """(why, key, locked) of each scenario one step more permissive than ``s``."""
    k = s.key
    nxt = domain.next_point(s)
    if nxt is not None:
        yield "confidence raised", k[:_K_CONF] + (nxt,) + k[_K_CONF + 1:], s.locked
    if k[_K_RISK] in _LOWER_RISK:
        yield "risk lowered", k[:_K_RISK] + (_LOWER_RISK[k[_K_RISK]],) + k[_K_RISK + 1:], s.locked
    if s.locked:
        yield "unlocked", k, False
    if not s.allow_live:
        yield "allow_live on", k[:_K_ALLOW_LIVE] + (True,) + k[_K_ALLOW_LIVE + 1:], s.locked
    if s.lock_mode is LockMode.MOCK_ONLY:
        yield "lock_mode dry_run", k[:_K_LOCK_MODE] + ("dry_run",) + k[_K_LOCK_MODE + 1:], s.locked


def _from_key(key: tuple, locked: bool) -> Scenario:
    (policy, tool, risk, conf, allow_live, lock_mode, on_denied, sdr, rev, idem, retries) = key
    return Scenario(policy, tool, Risk(risk), conf, allow_live, locked, LockMode(lock_mode),
                    OnDenied(on_denied), sdr, rev, idem, retries)


def _mode_name(rank: int) -> str:
    return "not run" if rank == NOT_RUN else Mode(rank).label


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------


def run_model_check(
    scenario_filter: Callable[[Scenario], bool] | None = None,
    *,
    controller: Controller = CONTROLLER,
    guards: GuardFn = guard_set,
    machine: Machine = MACHINE,
) -> Report:
    """Walk every path of every scenario; check I1, I2, I3, I8, I9 (+ the I4 retry
    rule and I7). ``scenario_filter`` narrows the domain (tests keep a slice
    fast); ``controller``, ``guards`` and ``machine`` are what is under test."""
    run = _Run(controller, guards, machine)
    run.check_table()
    all_scenarios = [s for s in scenarios() if scenario_filter is None or scenario_filter(s)]
    by_signature: dict[tuple, list[Scenario]] = {}
    for s in all_scenarios:
        by_signature.setdefault(run.signature(s), []).append(s)
    covered = 0
    for members in by_signature.values():
        n = _Walker(run, members[0]).walk()
        run.paths += n
        covered += n * len(members)
    exempt = run.check_monotone(all_scenarios)
    notes = (
        f"I3: {exempt} pairs exempted where the more permissive scenario was put to the approval "
        f"gate and denied, so on_denied (mock | cancel) placed it below a scenario that was never "
        f"asked; a denial is the gate's decision, not the machine's, and only lowers power.",
        "The system lock toggles at most once per path, while a call is ready or awaiting approval.",
    )
    return Report(
        states=len(controller.states), transitions=sum(len(es) for es in controller.table.values()),
        scenarios=len(all_scenarios), signatures=len(by_signature), paths_walked=run.paths,
        paths_covered=covered, steps=run.steps, checks=dict(run.checks),
        violations=tuple(run.violations), violation_count=run.violation_count,
        violations_by_invariant=dict(run.by_invariant), notes=notes,
    )
