"""The guard valuation of one call at one moment: which ``Guard`` facts hold.

The orchestrator calls ``guard_set`` on every event of a call and hands the
result to ``CONTROLLER.fire``. It runs per dispatch, so it is a flat
function building one frozenset; each line is the guard's safety rule
(``states.GUARD_RULES``) in code.
"""

from __future__ import annotations

from interlock.core.controller.decision import Decision
from interlock.core.controller.states import Guard
from interlock.core.model import Mode, OnDenied

__all__ = ["guard_set"]

_LIVE = Guard.LIVE_PERMITTED
_DRY = Guard.DRY_RUN_PERMITTED
_NEEDS = Guard.NEEDS_APPROVAL
_CANCEL = Guard.ON_DENIED_CANCEL
_ON_DRY = Guard.ON_DENIED_DRY_RUN
_RETRY = Guard.RETRY_ALLOWED
_IDEM = Guard.IDEMPOTENT
_ROLLBACK = Guard.ROLLBACKABLE
_RESOLVED = Guard.RESOLVED_SUCCEEDED
_M_LIVE = Mode.LIVE
_D_CANCEL = OnDenied.CANCEL
_D_DRY = OnDenied.DRY_RUN


def guard_set(
    decision: Decision | None,
    *,
    approval_granted: bool = False,
    on_denied: OnDenied = OnDenied.DRY_RUN,
    retries_left: int = 0,
    mode: Mode | None = None,
    idempotent: bool = False,
    reversible: bool = False,
    resolved_succeeded: bool = False,
) -> frozenset[Guard]:
    """Which guards hold. ``decision`` is ``decide()`` at this moment (None: no
    mode is permitted beyond MOCK, e.g. for outcome events that do not need one).

    ``mode`` is the mode of the execution the event is about (retry, rollback).
    """
    true: list[Guard] = []
    if decision is not None:
        live = decision.live_permitted
        if live:
            true.append(_LIVE)  # I1
            if decision.approval_required and not approval_granted:
                true.append(_NEEDS)  # I1: approval before LIVE
        if decision.dry_run_permitted:
            true.append(_DRY)  # I2
    if on_denied is _D_CANCEL:
        true.append(_CANCEL)
    elif on_denied is _D_DRY:
        true.append(_ON_DRY)
    if retries_left > 0 and (mode is not _M_LIVE or idempotent):
        true.append(_RETRY)  # section 5 / I4
    if idempotent:
        true.append(_IDEM)
    if reversible and mode is _M_LIVE:
        true.append(_ROLLBACK)  # I7
    if resolved_succeeded:
        true.append(_RESOLVED)
    return frozenset(true)
