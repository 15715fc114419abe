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
    """Named facts about one call at one moment. Each is a safety rule (the
    comments below; the same text, as data, is ``GUARD_RULES`` at the end)."""

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


# --------------------------------------------------------------------------
# Documentation data: rendered into specs/controller.md and the diagrams, and
# read by the definition-time checks in ``interlock.core.controller.machine``.
# --------------------------------------------------------------------------

#: What each state means (SPEC section 2).
STATE_MEANING: dict[State, str] = {
    S.PROPOSED: "received, not yet validated",
    S.REJECTED: "cannot run: policy denies the tool, unresolvable or rejected dependency, "
                "duplicate step id, a resource template naming an absent optional argument",
    S.WAITING: "valid; waiting for dependencies or a serialized conflict",
    S.READY: "may be dispatched now",
    S.AWAITING_APPROVAL: "LIVE is permitted only with approval; request sent",
    S.RUNNING_MOCK: "executing as MOCK (the contract's mock_result; no side effect)",
    S.RUNNING_DRY_RUN: "executing as DRY_RUN (a preview; changes nothing)",
    S.RUNNING_LIVE: "executing LIVE (real side effects)",
    S.SUCCEEDED: "finished successfully; left only for rolling_back",
    S.FAILED: "finished unsuccessfully after retries",
    S.OUTCOME_UNKNOWN: "a LIVE, non-idempotent execution whose result was lost (timeout, crash); "
                       "never retried automatically; left only by an operator's resolve",
    S.CANCELLED: "will never run: dependency failed, conflict lost, approval denied with "
                 "on_denied: cancel, run aborted",
    S.ROLLING_BACK: "the compensating tool is running",
    S.ROLLED_BACK: "the compensating tool succeeded",
    S.ROLLBACK_FAILED: "the compensating tool failed",
}

#: The safety rule each guard implements (the comments in ``Guard``, as data).
GUARD_RULES: dict[Guard, str] = {
    G.LIVE_PERMITTED: "I1: LIVE only when not locked, allow_live, the tool is not denied, confidence >= "
                      "the live threshold for its risk (after overrides), and not a duplicate of an "
                      "irreversible key already started live (I4)",
    G.DRY_RUN_PERMITTED: "I2: a locked system runs DRY_RUN only under lock_mode: dry_run; the tool must "
                         "support dry runs and the confidence reach the dry-run threshold",
    G.NEEDS_APPROVAL: "I1: LIVE is permitted but approval is required and not yet granted",
    G.ON_DENIED_CANCEL: "approval denied, timed out or the gate failed (fail closed), and on_denied: cancel",
    G.ON_DENIED_DRY_RUN: "approval denied, timed out or the gate failed (fail closed), and on_denied: dry_run",
    G.RETRY_ALLOWED: "section 5: attempts left, and the mode is not LIVE or the tool is idempotent "
                     "(I4: never re-run a non-idempotent live call)",
    G.IDEMPOTENT: "the tool is safe to retry with the same args; a lost idempotent LIVE call may be "
                  "retried instead of becoming outcome_unknown",
    G.ROLLBACKABLE: "I7: only LIVE, reversible, succeeded calls are rolled back",
    G.RESOLVED_SUCCEEDED: "an operator settled an unknown outcome as succeeded",
}

#: What each trigger means, in definition order.
TRIGGER_MEANING: dict[str, str] = {
    "accept": "intake found the call valid",
    "reject": "intake found a plan problem (a reason names plan and step)",
    "release": "dependencies succeeded and no serialized conflict is ahead of it",
    "dispatch": "the scheduler starts the call: the most powerful permitted mode",
    "approve": "the approval gate granted LIVE",
    "deny": "the approval gate denied, timed out or failed (fail closed)",
    "succeed": "the execution finished successfully",
    "fail": "the execution failed",
    "lose": "the execution's outcome was lost (timeout, crash)",
    "resolve": "an operator settled an unknown outcome",
    "cancel": "the call will never run (dependency failed, conflict lost, run aborted)",
    "rollback": "the saga compensates a succeeded call of a failed plan",
    "rollback_ok": "the compensating tool succeeded",
    "rollback_error": "the compensating tool failed",
}

#: (source, trigger) pairs whose guarded edges may all refuse. Firing such a
#: trigger then raises InvalidTransition and nothing changes. Every other
#: (source, trigger) edge list ends in an unguarded edge, so it always moves.
PARTIAL: dict[tuple[State, str], str] = {
    (S.SUCCEEDED, "rollback"): "I7: only LIVE, reversible successes are compensated; "
                               "any other success stays succeeded",
}

#: Triggers whose edge list must end in an unguarded fallback to running_mock
#: (Rule 3: MOCK is always permitted and never has side effects).
MOCK_FALLBACK_TRIGGERS: tuple[str, ...] = ("dispatch", "approve", "deny")

#: The lock machine starts unlocked.
SYSTEM_INITIAL = SystemState.UNLOCKED
