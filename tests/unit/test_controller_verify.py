"""The model checker passes the real controller and catches broken ones.

Every mutant below breaks one rule; the checker must name the invariant it
breaks. A checker that cannot fail would prove nothing.
"""

from __future__ import annotations

import copy

import pytest

from interlock.adapters import cli, cmd_verify
from interlock.core.controller import verify
from interlock.core.controller.guards import guard_set
from interlock.core.controller.machine import MACHINE, build_machine, compile_machine
from interlock.core.controller.states import TERMINAL, TRANSITIONS, Guard, State
from interlock.core.model import LockMode, OnDenied, Risk

S, G = State, Guard


def _small(s: verify.Scenario) -> bool:
    """A slice that still has approval, locks, retries and every outcome."""
    return s.policy == "default" and s.risk in (Risk.MEDIUM, Risk.HIGH)


def _tiny(s: verify.Scenario) -> bool:
    """High risk only (approval required), for the mutants."""
    return s.policy == "default" and s.risk is Risk.HIGH


def _live_no_retries(s: verify.Scenario) -> bool:
    """For mutants that retry forever: every path runs to the step bound, so keep few."""
    return _tiny(s) and s.retries == 0 and s.allow_live and s.on_denied is OnDenied.DRY_RUN


def _always_retry(decision, **kw):
    return guard_set(decision, **kw) | {G.RETRY_ALLOWED}


def _mutant(definition: list[dict]):
    machine = build_machine(definition)
    return {"controller": compile_machine(machine, State, terminal=TERMINAL), "machine": machine}


def _replace(pred, new: dict) -> list[dict]:
    return [new if pred(t) else t for t in copy.deepcopy(TRANSITIONS)]


@pytest.fixture(scope="module")
def real_report():
    return verify.run_model_check(_small)


def test_the_real_controller_has_no_violation(real_report):
    r = real_report
    assert r.ok, r.violations[:3]
    assert r.violation_count == 0
    assert r.states == len(State)
    assert r.transitions == sum(len(es) for es in MACHINE.events["dispatch"].transitions.values()) + 34
    assert r.paths_walked > 1000 and r.paths_covered >= r.paths_walked
    assert r.signatures < r.scenarios
    for name in verify.INVARIANTS:
        assert r.checks[name] > 0, name


def test_the_full_domain_has_every_axis():
    scen = verify.scenarios()
    assert {s.policy for s in scen} == {name for name, _p, _t in verify.base_policies()}
    assert {s.on_denied for s in scen} == set(OnDenied)
    assert {s.lock_mode for s in scen} == set(LockMode)
    assert {s.retries for s in scen} == {0, 1}
    # Confidences exactly at, just below and just above the default high live threshold.
    high = {s.confidence for s in scen if s.policy == "default" and s.risk is Risk.HIGH}
    assert {0.0, 1.0, 0.9} <= high
    assert any(c < 0.9 and 0.9 - c < 1e-15 for c in high)
    assert any(c > 0.9 and c - 0.9 < 1e-15 for c in high)


def _violations(report: verify.Report) -> set[str]:
    return {k for k, n in report.violations_by_invariant.items() if n}


def test_live_rung_before_the_approval_rung_breaks_i1():
    # The ladder in the wrong order: LIVE is tried before asking for approval.
    broken = copy.deepcopy(TRANSITIONS)
    i = next(k for k, t in enumerate(broken) if t["trigger"] == "dispatch")
    broken[i], broken[i + 1] = broken[i + 1], broken[i]
    del broken[i]["unless"]
    report = verify.run_model_check(_tiny, **_mutant(broken))
    assert "I1" in _violations(report)
    assert any("without a recorded grant" in v.detail for v in report.violations)


def test_approve_without_rechecking_live_breaks_i1_and_i2():
    broken = _replace(lambda t: t["trigger"] == "approve" and t["dest"] is S.RUNNING_LIVE,
                      {"trigger": "approve", "source": S.AWAITING_APPROVAL, "dest": S.RUNNING_LIVE,
                       "conditions": [G.ON_DENIED_DRY_RUN]})
    report = verify.run_model_check(_tiny, **_mutant(broken))
    assert {"I1", "I2"} <= _violations(report)
    # The counterexample path shows the lock taken while the call waited for approval.
    assert any("system lock" in " ".join(v.path) for v in report.violations if v.invariant == "I2")


def test_retrying_regardless_of_attempts_and_mode_breaks_i4_and_i9():
    report = verify.run_model_check(_live_no_retries, guards=_always_retry)
    assert {"I4-retry", "I9"} <= _violations(report)


def test_rollback_of_anything_breaks_i7():
    broken = _replace(lambda t: t["trigger"] == "rollback",
                      {"trigger": "rollback", "source": S.SUCCEEDED, "dest": S.ROLLING_BACK})
    report = verify.run_model_check(_tiny, **_mutant(broken))
    assert "I7" in _violations(report)


def test_a_terminal_exit_breaks_i8():
    machine = build_machine()
    machine.add_transition("release", S.FAILED.value, S.READY.value)  # bypasses the definition checks
    report = verify.run_model_check(_tiny, controller=compile_machine(machine, State, terminal=TERMINAL),
                                    machine=machine)
    assert "I8" in _violations(report)


def test_a_table_that_disagrees_with_the_machine_is_caught():
    machine = build_machine()
    machine.add_transition("cancel", S.RUNNING_MOCK.value, S.CANCELLED.value)
    report = verify.run_model_check(_tiny, machine=machine)  # the real table, a different Machine
    assert _violations(report) == {"table=Machine"}


def test_dry_run_while_locked_breaks_i2_and_i3():
    def dry_when_locked(decision, **kw):
        g = guard_set(decision, **kw)
        return g | {G.DRY_RUN_PERMITTED} if decision is not None and decision.locked else g

    report = verify.run_model_check(_tiny, guards=dry_when_locked)
    assert {"I2", "I3"} <= _violations(report)
    assert any("unlocked" in v.detail for v in report.violations if v.invariant == "I3")


def test_a_stuck_call_breaks_i9():
    # deny loses its MOCK fallback: with on_denied: mock a denied call has nowhere to go.
    # The definition checks refuse that, so the built Machine is edited afterwards.
    machine = build_machine()
    machine.events["deny"].transitions[S.AWAITING_APPROVAL.value].pop()
    report = verify.run_model_check(_tiny, controller=compile_machine(machine, State, terminal=TERMINAL),
                                    machine=machine)
    assert "I9" in _violations(report)
    assert any("stuck" in v.detail for v in report.violations)


# --------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------


def test_cli_verify_prints_a_table_and_exits_0(monkeypatch, capsys):
    monkeypatch.setattr(cmd_verify, "run_model_check", lambda: verify.run_model_check(_tiny))
    assert cli.main(["verify"]) == 0
    out = capsys.readouterr().out
    assert "result: OK, no violation" in out
    for name in verify.INVARIANTS:
        assert name in out


def test_cli_verify_exits_1_and_shows_the_violation(monkeypatch, capsys):
    def broken():
        return verify.run_model_check(_live_no_retries, guards=_always_retry)

    monkeypatch.setattr(cmd_verify, "run_model_check", broken)
    assert cli.main(["verify", "--show", "2"]) == 1
    out = capsys.readouterr().out
    assert "violation(s)" in out and "[I" in out and "path:" in out
