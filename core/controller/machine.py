"""The controller definition as a ``transitions.Machine``, checked and compiled.

``states.TRANSITIONS`` is built once into a real ``transitions.Machine``
(``MACHINE``); that object is the single source of truth. When this module is
imported the machine's structure is checked (python-statemachine/Automat
style: a broken definition never loads) and compiled into ``CONTROLLER``, a
table read *from the Machine's events*, so the runtime cannot disagree with
the definition (a test compares them on every state, trigger and guard
valuation).

Per-call state lives in the caller's slotted records; ``CONTROLLER.fire()``
is a pure function ``(state, trigger, true guards) -> next state``. A Machine
per call costs hundreds of microseconds and kilobytes (bench/bench_controller.py).
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Any, Iterable, NamedTuple

import transitions
import transitions.core
from transitions import Machine

from interlock.core.controller.states import (
    INITIAL,
    MOCK_FALLBACK_TRIGGERS,
    PARTIAL,
    SYSTEM_INITIAL,
    SYSTEM_TRANSITIONS,
    TERMINAL,
    TRANSITIONS,
    Guard,
    State,
    SystemState,
)
from interlock.core.errors import InvalidTransition, MachineDefinitionError

__all__ = [
    "CONTROLLER", "MACHINE", "SYSTEM", "SYSTEM_MACHINE", "Controller", "Edge", "GuardModel",
    "build_machine", "build_system_machine", "compile_machine", "machine_edges",
]

CONTROLLER_NAME = "interlock.controller"
SYSTEM_NAME = "interlock.system"
_OUR_PREFIXES = (CONTROLLER_NAME + ": ", SYSTEM_NAME + ": ")


def _not_ours(record: Any) -> bool:
    """Logging filter: drop ``transitions`` records about our machines only.

    transitions logs every callback at DEBUG/INFO with the machine's name as
    the first argument. We name our machines and filter by that name, so a
    user's own machines keep logging as configured and we set no levels.
    """
    args = getattr(record, "args", None)
    return not (isinstance(args, tuple) and args and args[0] in _OUR_PREFIXES)


if _not_ours not in transitions.core._LOGGER.filters:  # idempotent on reload
    transitions.core._LOGGER.addFilter(_not_ours)


class GuardModel:
    """The Machine's model: each guard is a method reading ``true_guards``.

    Used to build the machine (conditions are guard names) and by tests that
    drive the real Machine; the runtime never goes through it.
    """

    def __init__(self, true_guards: frozenset[Guard] = frozenset()) -> None:
        self.true_guards = true_guards


def _guard_method(guard: Guard):
    def check(self: GuardModel) -> bool:
        return guard in self.true_guards

    check.__name__ = guard.value
    check.__doc__ = f"Whether {guard.value!r} holds for the call right now."
    return check


for _g in Guard:
    setattr(GuardModel, _g.value, _guard_method(_g))


class Edge(NamedTuple):
    """One compiled edge: taken when ``conditions <= true`` and ``unless & true`` is empty.

    ``index`` is the edge's position in its (source, trigger) list: 0 is tried first.
    """

    conditions: frozenset[Guard]
    unless: frozenset[Guard]
    dest: enum.Enum
    index: int


# --------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------


def _value(x: Any) -> Any:
    if isinstance(x, (list, tuple)):
        return [_value(i) for i in x]
    return x.value if isinstance(x, enum.Enum) else x


_TRANSITION_KEYS = ("trigger", "source", "dest", "conditions", "unless")


def _transitions_kwargs(entry: dict) -> dict:
    """A definition entry with enum members turned into the names ``transitions`` uses.

    Enum states would be named by ``member.name`` (``READY``); we want the SPEC's
    values (``ready``) in the machine, the diagrams and the logs.
    """
    unknown = set(entry) - set(_TRANSITION_KEYS)
    if unknown:
        raise MachineDefinitionError(f"transition {entry!r}: unknown keys {sorted(unknown)}")
    return {k: _value(v) for k, v in entry.items()}


def _build(definition: Iterable[dict], states: type[enum.Enum], initial: enum.Enum, name: str) -> Machine:
    try:
        return Machine(
            model=GuardModel(),
            states=[s.value for s in states],
            initial=initial.value,
            transitions=[_transitions_kwargs(t) for t in definition],
            auto_transitions=False,
            ignore_invalid_triggers=False,
            name=name,
        )
    except (ValueError, TypeError, AttributeError) as exc:  # transitions' own refusals
        raise MachineDefinitionError(f"{name}: transitions refused the definition: {exc}") from exc


def build_machine(definition: Iterable[dict] = TRANSITIONS, *, initial: State = INITIAL) -> Machine:
    """The controller as a ``transitions.Machine``, structurally checked.

    ``definition`` defaults to ``states.TRANSITIONS``; tests pass broken
    variants to prove each check refuses them.
    """
    machine = _build(definition, State, initial, CONTROLLER_NAME)
    _check(
        machine_edges(machine, State), State, initial,
        terminal=TERMINAL, partial=frozenset(PARTIAL), mock_fallback=MOCK_FALLBACK_TRIGGERS,
        name=CONTROLLER_NAME,
    )
    _check_i8(machine_edges(machine, State))
    return machine


def build_system_machine(definition: Iterable[dict] = SYSTEM_TRANSITIONS) -> Machine:
    """The lock machine (``unlocked`` <-> ``locked``), structurally checked.

    It has no terminal state by design; instead every state must be able to
    reach every other (a lock can always be lifted by an operator).
    """
    machine = _build(definition, SystemState, SYSTEM_INITIAL, SYSTEM_NAME)
    edges = machine_edges(machine, SystemState)
    _check(edges, SystemState, SYSTEM_INITIAL, terminal=frozenset(), partial=frozenset(),
           mock_fallback=(), name=SYSTEM_NAME)
    for s in SystemState:
        missing = set(SystemState) - _reachable(edges, s)
        if missing:
            raise MachineDefinitionError(
                f"{SYSTEM_NAME}: from {s.value!r} the states {sorted(m.value for m in missing)} are unreachable")
    return machine


# --------------------------------------------------------------------------
# Reading the Machine back
# --------------------------------------------------------------------------


def machine_edges(machine: Machine, states: type[enum.Enum]) -> dict[tuple[Any, str], tuple[Edge, ...]]:
    """Every (source, trigger) -> ordered edges, read from the Machine's events.

    Dict order is the Machine's: triggers in definition order, sources in the
    order they first appear for that trigger.
    """
    table: dict[tuple[Any, str], tuple[Edge, ...]] = {}
    for trigger, event in machine.events.items():
        for source, trans_list in event.transitions.items():
            edges = []
            for i, t in enumerate(trans_list):
                if t.dest is None:
                    raise MachineDefinitionError(f"{trigger} from {source}: internal transitions are not allowed")
                conds = [c for c in t.conditions if c.target]
                unless = [c for c in t.conditions if not c.target]
                edges.append(Edge(_guards(conds, trigger, source), _guards(unless, trigger, source),
                                  _state(states, t.dest), i))
            table[(_state(states, source), trigger)] = tuple(edges)
    return table


def _state(states: type[enum.Enum], name: str) -> Any:
    try:
        return states(name)
    except ValueError:
        raise MachineDefinitionError(f"unknown state {name!r} (expected one of {[s.value for s in states]})") from None


def _guards(conditions: list, trigger: str, source: str) -> frozenset[Guard]:
    out = set()
    for c in conditions:
        try:
            out.add(Guard(c.func))
        except ValueError:
            raise MachineDefinitionError(
                f"{trigger} from {source}: condition {c.func!r} is not a Guard "
                f"(expected one of {[g.value for g in Guard]})") from None
    return frozenset(out)


# --------------------------------------------------------------------------
# Definition-time checks
# --------------------------------------------------------------------------


def _reachable(edges: dict, start: Any) -> set:
    seen, todo = {start}, deque([start])
    while todo:
        s = todo.popleft()
        for (src, _trigger), es in edges.items():
            if src == s:
                for e in es:
                    if e.dest not in seen:
                        seen.add(e.dest)
                        todo.append(e.dest)
    return seen


def _check(edges: dict, states: type[enum.Enum], initial: Any, *, terminal: frozenset,
           partial: frozenset, mock_fallback: tuple[str, ...], name: str) -> None:
    def fail(msg: str) -> None:
        raise MachineDefinitionError(f"{name}: {msg}")

    unreachable = set(states) - _reachable(edges, initial)
    if unreachable:
        fail(f"states unreachable from {initial.value!r}: {sorted(s.value for s in unreachable)}")
    for s in states:
        if s in terminal:
            out = sorted(t for (src, t) in edges if src == s)
            if out:
                fail(f"terminal state {s.value!r} has outgoing triggers {out}")
        elif terminal and not (_reachable(edges, s) & terminal):
            fail(f"state {s.value!r} cannot reach a terminal state")
    for (src, trigger), es in edges.items():
        where = f"{trigger!r} from {src.value!r}"
        unguarded = [e.index for e in es if not e.conditions and not e.unless]
        if len(unguarded) > 1:
            fail(f"{where} has {len(unguarded)} unguarded edges (positions {unguarded}); only the last may be")
        if unguarded and unguarded[0] != len(es) - 1:
            fail(f"{where}: the unguarded edge at position {unguarded[0]} hides the edges after it")
        if trigger in mock_fallback:
            last = es[-1]
            if last.conditions or last.unless or last.dest is not State.RUNNING_MOCK:
                fail(f"{where} must end in an unguarded fallback to 'running_mock' (Rule 3)")
        if not unguarded and (src, trigger) not in partial:
            fail(f"{where} may refuse every edge: end it with an unguarded edge or document it in PARTIAL")
    for src, trigger in partial:
        if (src, trigger) not in edges:
            fail(f"PARTIAL names {trigger!r} from {src.value!r}, which has no edge")


def _check_i8(edges: dict) -> None:
    """I8 as structure: succeeded leaves only for rolling_back, outcome_unknown only by resolve."""
    for (src, trigger), es in edges.items():
        if src is State.SUCCEEDED and any(e.dest is not State.ROLLING_BACK for e in es):
            raise MachineDefinitionError(f"{CONTROLLER_NAME}: I8: {trigger!r} leaves 'succeeded' "
                                         f"for something other than 'rolling_back'")
        if src is State.OUTCOME_UNKNOWN and trigger != "resolve":
            raise MachineDefinitionError(f"{CONTROLLER_NAME}: I8: 'outcome_unknown' may be left "
                                         f"only by 'resolve', not {trigger!r}")


# --------------------------------------------------------------------------
# The compiled runtime
# --------------------------------------------------------------------------


class Controller:
    """The compiled machine: a dict ``(state, trigger) -> ordered edges``.

    Holds no per-call state. ``fire`` is what the orchestrator calls on every
    event; it never changes anything itself, it returns the next state or
    raises ``InvalidTransition`` (and the caller's record stays as it was).
    """

    __slots__ = ("name", "states", "initial", "terminal", "triggers", "table")

    def __init__(self, machine: Machine, states: type[enum.Enum], *, terminal: frozenset = frozenset()) -> None:
        self.name = machine.name.rstrip(": ")
        self.states: tuple = tuple(states)
        self.initial = states(machine.initial)
        self.terminal = frozenset(terminal)
        self.triggers: tuple[str, ...] = tuple(machine.events)
        self.table: dict[tuple[Any, str], tuple[Edge, ...]] = machine_edges(machine, states)

    def fire(self, state: Any, trigger: str, true_guards: frozenset = frozenset(), call_id: str = "?") -> Any:
        """The next state: the first edge whose conditions hold and whose unless fail."""
        edges = self.table.get((state, trigger))
        if edges is None:
            raise InvalidTransition(call_id, str(state), trigger, "no such edge")
        for conditions, unless, dest, _ in edges:
            if conditions <= true_guards and unless.isdisjoint(true_guards):
                return dest
        raise InvalidTransition(call_id, str(state), trigger,
                                "no edge's guards hold; true guards: "
                                + (", ".join(sorted(g.value for g in true_guards)) or "none"))

    def allowed(self, state: Any, trigger: str, true_guards: frozenset | None = None) -> bool:
        """Whether ``trigger`` has an edge from ``state`` (and, given guards, would move)."""
        edges = self.table.get((state, trigger))
        if edges is None:
            return False
        if true_guards is None:
            return True
        return any(c <= true_guards and u.isdisjoint(true_guards) for c, u, _d, _i in edges)

    def edges_from(self, state: Any) -> tuple[tuple[str, Edge], ...]:
        """Every (trigger, edge) leaving ``state``, in definition order."""
        return tuple((t, e) for (s, t), es in self.table.items() if s == state for e in es)

    def triggers_from(self, state: Any) -> tuple[str, ...]:
        return tuple(t for (s, t) in self.table if s == state)

    def __repr__(self) -> str:
        return f"Controller({self.name!r}, {len(self.table)} (state, trigger) entries)"


def compile_machine(machine: Machine, states: type[enum.Enum], *, terminal: frozenset = frozenset()) -> Controller:
    return Controller(machine, states, terminal=terminal)


#: The definition, built once and checked at import.
MACHINE: Machine = build_machine()
#: The runtime table compiled from ``MACHINE``.
CONTROLLER: Controller = compile_machine(MACHINE, State, terminal=TERMINAL)
#: The lock machine and its compiled table: ``SYSTEM.fire(SystemState.UNLOCKED, "lock")``.
SYSTEM_MACHINE: Machine = build_system_machine()
SYSTEM: Controller = compile_machine(SYSTEM_MACHINE, SystemState)
