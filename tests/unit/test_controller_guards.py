"""guard_set: each guard is its safety rule, over every combination of inputs."""

from __future__ import annotations

import itertools

import attrs

from interlock.core.controller.decision import decide
from interlock.core.controller.guards import guard_set
from interlock.core.controller.states import Guard
from interlock.core.model import Mode, OnDenied, Policy, Risk, ToolContract

G = Guard


def _decision(live: bool, dry: bool, approval: bool):
    base = decide(ToolContract(name="t", risk=Risk.HIGH, supports_dry_run=True), 1.0,
                  Policy(allow_live=True), locked=False)
    return attrs.evolve(base, live_permitted=live, dry_run_permitted=dry, approval_required=approval)


def test_every_input_combination_matches_the_rules():
    bools = (False, True)
    for live, dry, appr, granted, idem, rev, resolved in itertools.product(bools, repeat=7):
        for on_denied, retries, mode in itertools.product(OnDenied, (0, 1, 2), (None, *Mode)):
            got = guard_set(_decision(live, dry, appr), approval_granted=granted, on_denied=on_denied,
                            retries_left=retries, mode=mode, idempotent=idem, reversible=rev,
                            resolved_succeeded=resolved)
            expected = {
                G.LIVE_PERMITTED: live,
                G.DRY_RUN_PERMITTED: dry,
                G.NEEDS_APPROVAL: live and appr and not granted,
                G.ON_DENIED_CANCEL: on_denied is OnDenied.CANCEL,
                G.ON_DENIED_DRY_RUN: on_denied is OnDenied.DRY_RUN,
                G.RETRY_ALLOWED: retries > 0 and (mode != Mode.LIVE or idem),
                G.IDEMPOTENT: idem,
                G.ROLLBACKABLE: mode == Mode.LIVE and rev,
                G.RESOLVED_SUCCEEDED: resolved,
            }
            assert got == frozenset(g for g, on in expected.items() if on)


def test_no_decision_permits_nothing_beyond_mock():
    got = guard_set(None, on_denied=OnDenied.MOCK)
    assert got == frozenset()
    assert isinstance(got, frozenset)


def test_a_non_idempotent_live_call_is_never_retryable():
    assert G.RETRY_ALLOWED not in guard_set(None, retries_left=5, mode=Mode.LIVE, idempotent=False)
    assert G.RETRY_ALLOWED in guard_set(None, retries_left=5, mode=Mode.LIVE, idempotent=True)
    assert G.RETRY_ALLOWED in guard_set(None, retries_left=1, mode=Mode.DRY_RUN)


def test_approval_is_needed_only_when_live_would_otherwise_be_taken():
    real = decide(ToolContract(name="t", risk=Risk.HIGH), 0.95, Policy(allow_live=True), locked=False)
    assert real.approval_required and real.live_permitted
    assert G.NEEDS_APPROVAL in guard_set(real)
    assert G.NEEDS_APPROVAL not in guard_set(real, approval_granted=True)
    locked = decide(ToolContract(name="t", risk=Risk.HIGH), 0.95, Policy(allow_live=True), locked=True)
    assert guard_set(locked) == frozenset({G.ON_DENIED_DRY_RUN})
