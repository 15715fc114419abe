"""The controller Machine, its definition-time checks and the compiled table."""

from __future__ import annotations

import copy
import itertools
import logging

import pytest
from transitions import Machine, MachineError

from interlock.core.controller import machine as m
from interlock.core.controller.machine import (
    CONTROLLER, MACHINE, SYSTEM, SYSTEM_MACHINE, GuardModel, build_machine, build_system_machine,
)
from interlock.core.controller.states import (
    FINAL, PARTIAL, SYSTEM_TRANSITIONS, TERMINAL, TRANSITIONS, TRIGGERS, Guard, State, SystemState,
)
from interlock.core.errors import InvalidTransition, MachineDefinitionError

S, G = State, Guard


def _relevant_guards(controller, trigger):
    out = set()
    for (_s, t), edges in controller.table.items():
        if t == trigger:
            for e in edges:
                out |= e.conditions | e.unless
    return sorted(out, key=list(Guard).index)


def _subsets(items):
    return [frozenset(c) for r in range(len(items) + 1) for c in itertools.combinations(items, r)]


def _machine_fire(machine: Machine, state, trigger, guards):
    """Fire on a fresh model of a real transitions.Machine; None when it refuses."""
    model = GuardModel(guards)
    machine.add_model(model, initial=state.value)
    try:
        moved = model.trigger(trigger)
    except MachineError:
        return None
    finally:
        machine.remove_model(model)
    return model.state if moved else None


@pytest.mark.parametrize("controller,build,states", [
    (CONTROLLER, build_machine, State), (SYSTEM, build_system_machine, SystemState)],
    ids=["controller", "system"])
def test_compiled_table_agrees_with_the_machine_on_every_valuation(controller, build, states):
    machine = build()
    checked = 0
    for state in states:
        for trigger in machine.events:
            for guards in _subsets(_relevant_guards(controller, trigger)):
                expected = _machine_fire(machine, state, trigger, guards)
                try:
                    got = controller.fire(state, trigger, guards).value
                except InvalidTransition:
                    got = None
                assert got == expected, (state, trigger, sorted(guards))
                checked += 1
    assert checked >= len(states) * len(machine.events)


def test_table_is_read_from_the_machine_events_not_the_definition():
    # Add an edge to a copy of the Machine only: a controller compiled from it sees it.
    machine = build_machine()
    machine.add_transition("cancel", S.RUNNING_MOCK.value, S.CANCELLED.value)
    compiled = m.compile_machine(machine, State, terminal=TERMINAL)
    assert compiled.fire(S.RUNNING_MOCK, "cancel") is S.CANCELLED
    with pytest.raises(InvalidTransition):
        CONTROLLER.fire(S.RUNNING_MOCK, "cancel")


def test_machine_is_built_with_the_required_options():
    assert MACHINE.auto_transitions is False
    assert MACHINE.ignore_invalid_triggers is False
    assert MACHINE.initial == "proposed"
    assert list(MACHINE.states) == [s.value for s in State]
    assert tuple(MACHINE.events) == TRIGGERS
    assert isinstance(MACHINE.model, GuardModel)
    assert list(SYSTEM_MACHINE.states) == ["unlocked", "locked"]


def test_dispatch_ladder_takes_the_first_edge_whose_guards_hold():
    fire = CONTROLLER.fire
    assert fire(S.READY, "dispatch", frozenset({G.LIVE_PERMITTED, G.NEEDS_APPROVAL, G.DRY_RUN_PERMITTED})) \
        is S.AWAITING_APPROVAL
    assert fire(S.READY, "dispatch", frozenset({G.LIVE_PERMITTED, G.DRY_RUN_PERMITTED})) is S.RUNNING_LIVE
    assert fire(S.READY, "dispatch", frozenset({G.DRY_RUN_PERMITTED})) is S.RUNNING_DRY_RUN
    assert fire(S.READY, "dispatch", frozenset()) is S.RUNNING_MOCK
    assert fire("ready", "dispatch") is S.RUNNING_MOCK  # plain string states work too


def test_invalid_trigger_raises_and_names_call_state_and_trigger():
    with pytest.raises(InvalidTransition) as info:
        CONTROLLER.fire(S.FAILED, "dispatch", frozenset(Guard), call_id="p/s")
    err = info.value
    assert (err.call_id, err.state, err.trigger) == ("p/s", "failed", "dispatch")
    # A partial trigger whose guards all refuse is invalid too.
    with pytest.raises(InvalidTransition, match="no edge's guards hold"):
        CONTROLLER.fire(S.SUCCEEDED, "rollback", frozenset({G.IDEMPOTENT}))
    with pytest.raises(InvalidTransition):
        SYSTEM.fire(SystemState.UNLOCKED, "unlock")


def test_terminal_states_are_absorbing_for_every_trigger_and_valuation():
    everything = frozenset(Guard)
    for s in TERMINAL:
        assert CONTROLLER.edges_from(s) == ()
        for t in CONTROLLER.triggers:
            assert not CONTROLLER.allowed(s, t)
            for guards in (frozenset(), everything):
                with pytest.raises(InvalidTransition):
                    CONTROLLER.fire(s, t, guards)


def test_edges_from_and_allowed():
    triggers = [t for t, _e in CONTROLLER.edges_from(S.READY)]
    assert triggers == ["dispatch"] * 4 + ["cancel"]
    assert CONTROLLER.triggers_from(S.AWAITING_APPROVAL) == ("approve", "deny", "cancel")
    assert CONTROLLER.allowed(S.SUCCEEDED, "rollback")
    assert not CONTROLLER.allowed(S.SUCCEEDED, "rollback", frozenset())
    assert CONTROLLER.allowed(S.SUCCEEDED, "rollback", frozenset({G.ROLLBACKABLE}))
    assert SYSTEM.fire(SystemState.LOCKED, "lock") is SystemState.LOCKED
    assert SYSTEM.fire(SystemState.LOCKED, "unlock") is SystemState.UNLOCKED


def test_final_states_can_be_left_only_as_i8_says():
    for t, e in CONTROLLER.edges_from(S.SUCCEEDED):
        assert e.dest is S.ROLLING_BACK
    assert CONTROLLER.triggers_from(S.OUTCOME_UNKNOWN) == ("resolve",)
    assert FINAL - TERMINAL == {S.SUCCEEDED, S.OUTCOME_UNKNOWN}


# --------------------------------------------------------------------------
# Every definition-time check refuses a definition that breaks it.
# --------------------------------------------------------------------------


def _without(pred):
    return [t for t in copy.deepcopy(TRANSITIONS) if not pred(t)]


def _is(t, trigger, dest=None):
    return t["trigger"] == trigger and (dest is None or t["dest"] is dest)


BROKEN = {
    "unreachable": (_without(lambda t: _is(t, "accept")), "unreachable"),
    "cannot reach terminal": (  # rolling_back <-> succeeded, the rollback ends reached elsewhere
        _without(lambda t: t["trigger"] in ("rollback_ok", "rollback_error"))
        + [{"trigger": "rollback_ok", "source": S.ROLLING_BACK, "dest": S.SUCCEEDED},
           {"trigger": "x1", "source": S.PROPOSED, "dest": S.ROLLED_BACK},
           {"trigger": "x2", "source": S.PROPOSED, "dest": S.ROLLBACK_FAILED}],
        "cannot reach a terminal state"),
    "terminal with an exit": (
        TRANSITIONS + [{"trigger": "release", "source": S.FAILED, "dest": S.READY}],
        "terminal state 'failed' has outgoing"),
    "no fallback": (_without(lambda t: _is(t, "deny", S.RUNNING_MOCK)), "must end in an unguarded fallback"),
    "guarded end not partial": (
        _without(lambda t: _is(t, "resolve", S.FAILED)), "may refuse every edge"),
    "two unguarded": (
        TRANSITIONS + [{"trigger": "release", "source": S.WAITING, "dest": S.CANCELLED}], "2 unguarded edges"),
    "unguarded first": (
        [{"trigger": "dispatch", "source": S.READY, "dest": S.RUNNING_MOCK}] + TRANSITIONS, "2 unguarded edges"),
    "hidden edges": (
        [{"trigger": "fail", "source": S.RUNNING_MOCK, "dest": S.FAILED}]
        + _without(lambda t: _is(t, "fail", S.FAILED))
        + [{"trigger": "fail", "source": [S.RUNNING_DRY_RUN, S.RUNNING_LIVE], "dest": S.FAILED}],
        "hides the edges after it"),
    "fallback not mock": (
        _without(lambda t: _is(t, "approve", S.RUNNING_MOCK))
        + [{"trigger": "approve", "source": S.AWAITING_APPROVAL, "dest": S.CANCELLED}],
        "fallback to 'running_mock'"),
    "unknown guard": (
        [dict(t, conditions=["live_ok"]) if _is(t, "dispatch", S.RUNNING_DRY_RUN) else t for t in TRANSITIONS],
        "is not a Guard"),
    "succeeded leaves elsewhere": (
        TRANSITIONS + [{"trigger": "cancel", "source": S.SUCCEEDED, "dest": S.CANCELLED}], "I8"),
    "outcome_unknown left by cancel": (
        TRANSITIONS + [{"trigger": "cancel", "source": S.OUTCOME_UNKNOWN, "dest": S.CANCELLED}], "I8"),
    "unknown key": (
        [dict(t, guard="x") if _is(t, "accept") else t for t in TRANSITIONS], "unknown keys"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_definition_checks_refuse_broken_definitions(name):
    definition, message = BROKEN[name]
    with pytest.raises(MachineDefinitionError, match=message):
        build_machine(definition)


def test_the_real_definition_passes_and_partial_is_documented():
    build_machine()
    assert set(PARTIAL) == {(S.SUCCEEDED, "rollback")}


def test_system_machine_checks():
    build_system_machine()
    with pytest.raises(MachineDefinitionError, match="unreachable"):
        build_system_machine([t for t in SYSTEM_TRANSITIONS if t["trigger"] != "unlock"])
    with pytest.raises(MachineDefinitionError, match="may refuse every edge"):
        build_system_machine(SYSTEM_TRANSITIONS[:1] + [dict(SYSTEM_TRANSITIONS[1], conditions=["idempotent"])])


# --------------------------------------------------------------------------
# Logging: our machines are silent, a user's machines are not.
# --------------------------------------------------------------------------


def test_transitions_logging_is_silenced_for_our_machines_only(caplog):
    with caplog.at_level(logging.DEBUG, logger="transitions"):
        ours = build_machine()
        ours.model.accept()
        assert ours.model.state == "waiting"
        assert not [r for r in caplog.records if r.name.startswith("transitions")]
        theirs = Machine(states=["a", "b"], initial="a", transitions=[["go", "a", "b"]], name="user")
        theirs.go()
        assert [r for r in caplog.records if r.name.startswith("transitions")]
    assert logging.getLogger("transitions").level == logging.NOTSET
    assert logging.getLogger("transitions.core").level == logging.NOTSET


def test_documentation_data_covers_every_state_guard_and_trigger():
    from interlock.core.controller.states import GUARD_RULES, STATE_MEANING, TRIGGER_MEANING

    assert set(STATE_MEANING) == set(State)
    assert set(GUARD_RULES) == set(Guard)
    assert list(TRIGGER_MEANING) == list(TRIGGERS)
