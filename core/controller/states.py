"""The execution controller, defined once (SPEC section 2).

Read this file like a spec: the states, the triggers and, for every trigger,
the ordered guarded edges. The first edge whose ``conditions`` all hold and
whose ``unless`` all fail is taken (``transitions`` semantics). Everything
else (the runtime table, the diagrams, ``specs/controller.md``) is generated
from ``TRANSITIONS`` and tested for drift.

Guards are named facts computed by the caller for one call at one moment
(see ``interlock.core.controller.decision``); the machine itself holds no
policy. Each guard's safety rule is written next to it.
"""

from __future__ import annotations

import enum


class State(str, enum.Enum):
    PROPOSED = "proposed"
    REJECTED = "rejected"
    WAITING = "waiting"
    READY = "ready"
    AWAITING_APPROVAL = "awaiting_approval"
    RUNNING_MOCK = "running_mock"
    RUNNING_DRY_RUN = "running_dry_run"
    RUNNING_LIVE = "running_live"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    OUTCOME_UNKNOWN = "outcome_unknown"
    CANCELLED = "cancelled"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"

    def __str__(self) -> str:
        return self.value


INITIAL = State.PROPOSED

#: No outgoing transition, ever (I8).
TERMINAL: frozenset[State] = frozenset(
    {State.REJECTED, State.FAILED, State.CANCELLED, State.ROLLED_BACK, State.ROLLBACK_FAILED}
)

#: Where a run may end (I9): terminal, or one of the two "parked" states.
FINAL: frozenset[State] = TERMINAL | {State.SUCCEEDED, State.OUTCOME_UNKNOWN}

RUNNING: frozenset[State] = frozenset(
    {State.RUNNING_MOCK, State.RUNNING_DRY_RUN, State.RUNNING_LIVE}
)

#: States from which a call is no longer "about to run" (the resource it holds is settled).
SETTLED: frozenset[State] = FINAL | {State.ROLLING_BACK}


class Guard(str, enum.Enum):
    """Named facts about one call at one moment. Each is a safety rule."""

    # I1: LIVE only when section 2 says so: not locked, allow_live, not denied,
    # confidence >= live threshold for the risk (after overrides), and not a
    # duplicate of an irreversible key already started live (I4).
    LIVE_PERMITTED = "live_permitted"
    # I2: a locked system runs DRY_RUN only under lock_mode: dry_run; the tool
    # must support dry runs and the confidence reach the dry-run threshold.
    DRY_RUN_PERMITTED = "dry_run_permitted"
    # I1: LIVE is permitted but approval is required and not yet granted.
    NEEDS_APPROVAL = "needs_approval"
    # Approval denied (or timed out, or the gate failed: fail closed) and the
    # policy says on_denied: cancel / dry_run.
    ON_DENIED_CANCEL = "on_denied_cancel"
    ON_DENIED_DRY_RUN = "on_denied_dry_run"
    # Section 5: retry only with attempts left, and only when the mode is not
    # LIVE or the tool is idempotent (I4: never re-run a non-idempotent live call).
    RETRY_ALLOWED = "retry_allowed"
    IDEMPOTENT = "idempotent"
    # I7: only LIVE, reversible, succeeded calls are rolled back.
    ROLLBACKABLE = "rollbackable"
    # An operator settled an unknown outcome as succeeded.
    RESOLVED_SUCCEEDED = "resolved_succeeded"

    def __str__(self) -> str:
        return self.value


S, G = State, Guard
_RUNNING = [S.RUNNING_MOCK, S.RUNNING_DRY_RUN, S.RUNNING_LIVE]

#: The machine. Order matters within a trigger: the first edge whose guards hold wins.
TRANSITIONS: list[dict] = [
    # Intake. Rule 1: a call that cannot run is rejected before it waits.
    {"trigger": "accept", "source": S.PROPOSED, "dest": S.WAITING},
    {"trigger": "reject", "source": S.PROPOSED, "dest": S.REJECTED},
    # Dependencies succeeded and no serialized conflict is ahead of it.
    {"trigger": "release", "source": S.WAITING, "dest": S.READY},
    # The dispatch ladder (SPEC section 2), most powerful mode first.
    # Rule 2: approval is asked only when LIVE would otherwise be taken.
    {"trigger": "dispatch", "source": S.READY, "dest": S.AWAITING_APPROVAL,
     "conditions": [G.NEEDS_APPROVAL]},
    {"trigger": "dispatch", "source": S.READY, "dest": S.RUNNING_LIVE,
     "conditions": [G.LIVE_PERMITTED], "unless": [G.NEEDS_APPROVAL]},
    {"trigger": "dispatch", "source": S.READY, "dest": S.RUNNING_DRY_RUN,
     "conditions": [G.DRY_RUN_PERMITTED]},
    # Rule 3: MOCK is always permitted and never has side effects: the fallback.
    {"trigger": "dispatch", "source": S.READY, "dest": S.RUNNING_MOCK},
    # Approval granted. Rule 4: LIVE is re-checked at this moment (the system may
    # have been locked while the request was pending).
    {"trigger": "approve", "source": S.AWAITING_APPROVAL, "dest": S.RUNNING_LIVE,
     "conditions": [G.LIVE_PERMITTED]},
    {"trigger": "approve", "source": S.AWAITING_APPROVAL, "dest": S.RUNNING_DRY_RUN,
     "conditions": [G.DRY_RUN_PERMITTED]},
    {"trigger": "approve", "source": S.AWAITING_APPROVAL, "dest": S.RUNNING_MOCK},
    # Approval denied, timed out or failed (fail closed): follow on_denied.
    {"trigger": "deny", "source": S.AWAITING_APPROVAL, "dest": S.CANCELLED,
     "conditions": [G.ON_DENIED_CANCEL]},
    {"trigger": "deny", "source": S.AWAITING_APPROVAL, "dest": S.RUNNING_DRY_RUN,
     "conditions": [G.ON_DENIED_DRY_RUN, G.DRY_RUN_PERMITTED]},
    {"trigger": "deny", "source": S.AWAITING_APPROVAL, "dest": S.RUNNING_MOCK},
    # Outcomes.
    {"trigger": "succeed", "source": _RUNNING, "dest": S.SUCCEEDED},
    {"trigger": "fail", "source": _RUNNING, "dest": S.READY,
     "conditions": [G.RETRY_ALLOWED]},
    {"trigger": "fail", "source": _RUNNING, "dest": S.FAILED},
    # Rule 5: a LIVE, non-idempotent call whose outcome was lost may have had
    # its side effect: it is never retried, only an operator settles it (I4).
    {"trigger": "lose", "source": S.RUNNING_LIVE, "dest": S.OUTCOME_UNKNOWN,
     "unless": [G.IDEMPOTENT]},
    {"trigger": "lose", "source": _RUNNING, "dest": S.READY,
     "conditions": [G.RETRY_ALLOWED]},
    {"trigger": "lose", "source": _RUNNING, "dest": S.FAILED},
    {"trigger": "resolve", "source": S.OUTCOME_UNKNOWN, "dest": S.SUCCEEDED,
     "conditions": [G.RESOLVED_SUCCEEDED]},
    {"trigger": "resolve", "source": S.OUTCOME_UNKNOWN, "dest": S.FAILED},
    # Never run: dependency failed, conflict lost, run aborted.
    {"trigger": "cancel", "source": [S.PROPOSED, S.WAITING, S.READY, S.AWAITING_APPROVAL],
     "dest": S.CANCELLED},
    # The saga. Rule 6 (I7): only LIVE reversible successes are compensated.
    {"trigger": "rollback", "source": S.SUCCEEDED, "dest": S.ROLLING_BACK,
     "conditions": [G.ROLLBACKABLE]},
    {"trigger": "rollback_ok", "source": S.ROLLING_BACK, "dest": S.ROLLED_BACK},
    {"trigger": "rollback_error", "source": S.ROLLING_BACK, "dest": S.ROLLBACK_FAILED},
]

TRIGGERS: tuple[str, ...] = tuple(dict.fromkeys(t["trigger"] for t in TRANSITIONS))

#: The mode a running state executes in.
MODE_OF_STATE = {S.RUNNING_MOCK: 0, S.RUNNING_DRY_RUN: 1, S.RUNNING_LIVE: 2}


# The system-level machine: unlocked <-> locked. `lock` comes from an operator
# or the unsafe_escalation anomaly; `unlock` only from an operator with a reason.
class SystemState(str, enum.Enum):
    UNLOCKED = "unlocked"
    LOCKED = "locked"

    def __str__(self) -> str:
        return self.value


SYSTEM_TRANSITIONS: list[dict] = [
    {"trigger": "lock", "source": [SystemState.UNLOCKED, SystemState.LOCKED],
     "dest": SystemState.LOCKED},
    {"trigger": "unlock", "source": SystemState.LOCKED, "dest": SystemState.UNLOCKED},
]
