"""The orchestrator: a sans-I/O object in the style of h11.

Events in (``submit``, ``approval_answered``, ``intent_answered``,
``execution_finished``, ``rollback_finished``, ``tick``, ``lock``, ``unlock``,
``resolve``, ``abort``), commands out (``interlock.core.commands``). Time is a
value on every event. Every state change of every call goes through the
compiled controller (``CONTROLLER.fire``) and is appended to
``self.transitions`` with the rule that caused it.

The rules it keeps, beyond the controller's own guards:

Rule A (I5): a call is released only when all its dependencies succeeded; a
dependency that ends otherwise cancels it (and, transitively, its dependents).
Rule B (I6): ``serialize`` ordering edges hold a call until its predecessor is
settled (any final state); they never cancel.
Rule C (I4): an irreversible call is claimed in the intent ledger (a
``ClaimIntent`` command answered by ``intent_answered``) before it enters
``running_live``; a refused claim cancels it as a duplicate.
Rule D (I7): when a call of a plan fails and the plan says ``on_failure:
rollback``, the plan's calls that have not started are cancelled and, once none
of its calls is running, its LIVE reversible successes are compensated one at
a time in reverse completion order. Irreversible successes are listed.
Rule E (I2): ``lock`` takes effect at the next decision: nothing dispatched or
approved after it goes LIVE (nor DRY_RUN under ``lock_mode: mock_only``).
"""

from __future__ import annotations

import heapq
import re
from typing import Any, Iterable, Mapping

import attrs

from interlock.core.calls import Call, IntakeResult
from interlock.core.commands import (
    Alert,
    Cancelled,
    ClaimIntent,
    Command,
    Execute,
    ReleaseIntent,
    RequestApproval,
    Rollback,
    RunFinished,
    SystemLocked,
    SystemUnlocked,
)
from interlock.core.controller.decision import Decision, decide
from interlock.core.controller.guards import guard_set
from interlock.core.controller.machine import CONTROLLER, SYSTEM
from interlock.core.controller.states import (
    FINAL,
    MODE_OF_STATE,
    RUNNING,
    SETTLED,
    State,
    SystemState,
)
from interlock.core.errors import InvalidTransition, OrchestrationError
from interlock.core.intake import intake
from interlock.core.model import Catalog, Mode, OnDenied, OnFailure, PlanSet, Policy
from interlock.core.monitor import Monitor
from interlock.core.ports import ExecutionResult
from interlock.core.records import (
    AnomalyRecord,
    ConflictRecord,
    ExecutionRecord,
    RollbackEvent,
    TransitionRecord,
)
from interlock.core.resources import expand_value

S = State

#: Intake's conflict reasons start "conflict C0007 <type> on <resource>: ...".
_CONFLICT_REASON = re.compile(r"^conflict C\d+ (\w+) on ")


def _conflict_rule(reason: str) -> str:
    """The rule of a call cancelled by conflict resolution: the conflict's type."""
    m = _CONFLICT_REASON.match(reason)
    kind = m.group(1) if m else "unknown"
    return "duplicate_irreversible" if kind == "duplicate_irreversible" else f"conflict.{kind}"


class CallRecord:
    """Per-call runtime state: a small slotted record, not a Machine per call."""

    __slots__ = (
        "call", "state", "mode", "attempt", "retries_left", "approval_granted",
        "approved_by", "pending_deps", "pending_order", "pending_escalations",
        "dependents", "successors", "rule", "reason", "result", "started_at",
        "completed", "claimed", "claim_pending", "conflicted", "decision", "answer", "mode_rule",
        "request_id", "went_live", "predecessors", "order_released", "released_to",
    )

    def __init__(self, call: Call) -> None:
        self.call = call
        self.state = S.PROPOSED
        self.mode: Mode | None = None
        self.attempt = 0
        self.retries_left = call.contract.retries
        self.approval_granted = False
        self.approved_by: str | None = None
        self.pending_deps = 0
        self.pending_order = 0
        self.pending_escalations = 0
        self.dependents: list[str] = []  # hard: must succeed (I5)
        self.successors: list[str] = []  # soft: serialize order (I6)
        self.rule = ""
        self.reason: str | None = None
        self.result: Any = None
        self.started_at = 0.0
        self.completed = -1  # completion order, for the saga
        self.claimed = False
        self.claim_pending = False
        self.conflicted = False
        self.decision: Decision | None = None
        self.answer: tuple[bool, str, str, str] | None = None  # (granted, by, rule, reason)
        self.mode_rule = ""  # the rule that chose the mode of the latest attempt
        self.request_id: str | None = None  # its pending LIVE approval request, if any
        self.went_live = False  # an attempt entered running_live: its key stays claimed (I4)
        self.predecessors: list[str] = []  # soft: serialize edges into this call
        self.order_released = False  # its successors were released (it is settled for I6)
        self.released_to: list[str] = []  # the successors it released (a rollback waits for them)


@attrs.define
class _Approval:
    request: RequestApproval
    answered: bool = False


@attrs.define
class _Saga:
    plan_id: str
    trigger_call: str
    queue: list[str] = attrs.Factory(list)  # calls to compensate, in order
    started: bool = False
    current: str | None = None
    rollback_started_at: float = 0.0
    rollback_args: dict[str, Any] = attrs.Factory(dict)


class Orchestrator:
    """Drives every call of one run through the controller. Pure: no I/O, no clock."""

    def __init__(
        self,
        catalog: Catalog,
        policy: Policy,
        *,
        run_id: str,
        ledger: Mapping[tuple[str, str], str] | None = None,
        locked: bool = False,
        lock_reason: str = "",
        monitor: Monitor | None = None,
        policy_changes: Iterable[dict[str, Any]] = (),
    ) -> None:
        self.catalog = catalog
        self.policy = policy
        self.run_id = run_id
        self.ledger_keys: dict[tuple[str, str], str] = dict(ledger or {})
        # A lock held before the run (the durable store) is recorded as the run's
        # first system transition, so the log alone tells the lock state (I10).
        self.system = SystemState.UNLOCKED
        self.lock_reason = ""
        self.lock_by = ""
        self._initial_lock = (lock_reason or "locked before this run started") if locked else None
        self.policy_changes = list(policy_changes)
        self.monitor = monitor if monitor is not None else Monitor(policy)
        self.calls: dict[str, CallRecord] = {}
        self.order: list[str] = []
        self._by_plan: dict[str, list[CallRecord]] = {}  # submission order within each plan
        # Counters behind `done`, kept as things open and close: checking them must
        # not cost a scan of every call after every event (quadratic at 100k calls).
        self._open_calls = 0  # calls not in a FINAL state
        self._open_approvals = 0
        self._rollbacks_in_flight = 0
        self.transitions: list[TransitionRecord] = []
        self.executions: list[ExecutionRecord] = []
        self.conflicts: list[ConflictRecord] = []
        self.rollbacks: list[RollbackEvent] = []
        self.anomalies: list[AnomalyRecord] = []
        self.alerts: list[Alert] = []
        self.intake_result: IntakeResult | None = None
        self._approvals: dict[str, _Approval] = {}
        self._escalation_of: dict[str, Any] = {}
        self._ready: list[tuple[int, int, str]] = []
        self._blocked_by_tool: dict[str, list[tuple[int, int, str]]] = {}
        self._running = 0
        self._running_by_tool: dict[str, int] = {}
        self._completions = 0
        self._sagas: dict[str, _Saga] = {}
        self._saga_waiting: dict[str, str] = {}  # running call id -> plan whose saga waits for it
        self._failed_plans: set[str] = set()
        self._submitted = False
        self._finished_emitted = False
        self._aborted = False
        #: Every input event, in order: replaying them through a fresh orchestrator
        #: (same inputs) rebuilds this one exactly (I12) -- how `resume` recovers.
        self.events: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ facts

    @property
    def locked(self) -> bool:
        return self.system is SystemState.LOCKED

    @property
    def done(self) -> bool:
        """Every call is final, nothing is running, pending or being compensated (I9)."""
        return (self._submitted and self._open_calls == 0 and self._running == 0
                and self._rollbacks_in_flight == 0 and self._open_approvals == 0)

    def exit_code(self) -> int:
        """0 when every call ended as planned (succeeded), else 1 (SPEC section 11)."""
        return 0 if all(r.state is S.SUCCEEDED for r in self.calls.values()) else 1

    def state_of(self, call_id: str) -> State:
        return self._rec(call_id).state

    # ----------------------------------------------------------------- events

    def submit(self, plans: PlanSet, now: float) -> list[Command]:
        """Take a batch of plans: intake, conflicts, then start what can start."""
        if self._submitted:
            raise OrchestrationError("an orchestrator takes one batch of plans; start a new run")
        self._submitted = True
        self.events.append({"event": "submit", "now": now})
        if self._initial_lock is not None:
            self._lock(self._initial_lock, "store", now)
        for ch in self.policy_changes:  # auto_tune between runs: every change audited (I14)
            self.transitions.append(TransitionRecord(
                seq=len(self.transitions), time=now, machine="policy", call_id=None, plan_id=None,
                agent_id=None, src=f"{ch['risk']}.live={ch['from']}", trigger="tune",
                dst=f"{ch['risk']}.live={ch['to']}", rule="learning.auto_tune", detail=dict(ch),
            ))
        res = intake(plans, self.catalog, self.policy, ledger=self.ledger_keys)
        self.intake_result = res
        self.conflicts = list(res.conflicts)
        out: list[Command] = []
        conflicted = {c for rec in res.conflicts for c in rec.calls}
        for call in res.calls:
            rec = CallRecord(call)
            rec.conflicted = call.call_id in conflicted
            self.calls[call.call_id] = rec
            self.order.append(call.call_id)
            self._open_calls += 1
            self._by_plan.setdefault(call.plan_id, []).append(rec)
        for cid in self.order:
            rec = self.calls[cid]
            if cid in res.rejected:
                rule = "tool_denied" if res.rejected[cid].startswith("policy denies tool") else "plan_problem"
                self._fire(rec, "reject", frozenset(), now, rule, {"reason": res.rejected[cid]})
                rec.reason = res.rejected[cid]
                out.append(Cancelled(cid, rec.state.value, res.rejected[cid]))
            else:
                self._fire(rec, "accept", frozenset(), now, "intake.accepted", {})
        # Wire hard dependencies (rejected deps are handled by their escalation).
        for cid in self.order:
            rec = self.calls[cid]
            if rec.state is not S.WAITING:
                continue
            for dep in rec.call.deps:
                drec = self.calls[dep]
                if drec.state is S.REJECTED:
                    continue
                rec.pending_deps += 1
                drec.dependents.append(cid)
        for before, after in res.order_edges:
            b, a = self.calls[before], self.calls[after]
            if b.state in FINAL or a.state in FINAL:
                continue
            a.pending_order += 1
            b.successors.append(after)
            a.predecessors.append(before)
        for esc in res.escalations:
            live = [c for c in esc.call_ids if self.calls[c].state is S.WAITING]
            if not live:
                continue
            for c in live:
                self.calls[c].pending_escalations += 1
            first = self.calls[live[0]].call
            req = RequestApproval(
                request_id=f"{self.run_id}:{esc.conflict_id}",
                kind="conflict",
                call_ids=tuple(live),
                tool=first.tool,
                risk=first.contract.risk.value,
                confidence=first.confidence,
                agent_id=first.agent_id,
                plan_id=first.plan_id,
                args=dict(first.args),
                reason=esc.reason,
                deadline=now + self.policy.approval.timeout_s,
            )
            self._approvals[req.request_id] = _Approval(req)
            self._open_approvals += 1
            self._escalation_of[req.request_id] = esc
            out.append(req)
        for cid, reason in res.cancelled.items():
            rec = self.calls[cid]
            if rec.state in FINAL:
                continue
            out.extend(self._cancel(rec, now, _conflict_rule(reason), reason))
        # Dependents of rejected calls whose escalation does not cover them cannot run.
        covered = {pair for esc in res.escalations for pair in esc.drop_deps}
        for cid in self.order:
            rec = self.calls[cid]
            if rec.state is S.WAITING:
                bad = [d for d in rec.call.deps
                       if self.calls[d].state is S.REJECTED and (cid, d) not in covered]
                if bad:
                    out.extend(self._cancel(rec, now, "dependency_rejected",
                                            f"dependency {bad[0]} was rejected"))
        for cid in self.order:
            self._maybe_release(self.calls[cid], now)
        out.extend(self._pump(now))
        out.extend(self._finish_if_done())
        return out

    def approval_answered(self, request_id: str, granted: bool, by: str, now: float,
                          reason: str = "") -> list[Command]:
        appr = self._approvals.get(request_id)
        if appr is None:
            raise OrchestrationError(f"unknown approval request {request_id!r}")
        self.events.append({"event": "approval_answered", "request_id": request_id,
                            "granted": granted, "by": by, "reason": reason, "now": now})
        if appr.answered:
            return []  # a late answer after a timeout: the timeout already decided
        self._close_approval(appr)
        out: list[Command] = []
        if appr.request.kind == "conflict":
            out.extend(self._escalation_answered(request_id, granted, by, now, reason))
        else:
            rec = self.calls[appr.request.call_ids[0]]
            if rec.state is S.AWAITING_APPROVAL:
                rule = "approval_granted" if granted else (
                    "approval_timeout" if "timeout" in reason or "timed out" in reason
                    else "approval_denied")
                if granted:
                    rec.approval_granted = True
                    rec.approved_by = by
                rec.answer = (granted, by, rule, reason)
                if not granted and self.policy.approval.on_denied is OnDenied.CANCEL:
                    out.extend(self._deny(rec, now))  # needs no slot
                else:
                    self._enqueue(rec)  # starts when the limits allow
        out.extend(self._pump(now))
        out.extend(self._finish_if_done())
        return out

    def intent_answered(self, call_id: str, holder: str | None, now: float) -> list[Command]:
        """The ledger's answer to ``ClaimIntent``: ``None`` = claimed by this call."""
        rec = self._rec(call_id)
        if not rec.claim_pending:
            raise OrchestrationError(f"call {call_id!r} has no pending intent claim")
        if any(self.calls[d].state is not S.SUCCEEDED for d in rec.call.deps if d in self.calls
               and self.calls[d].state is not S.REJECTED):
            # A dependency was undone while the claim was out (I5): give the key back.
            self.events.append({"event": "intent_answered", "call_id": call_id, "holder": holder,
                                "now": now})
            rec.claim_pending = False
            self._release_slot(rec)
            out: list[Command] = []
            if holder is None or holder == call_id:
                out.append(ReleaseIntent(call_id, rec.call.idempotency_key))
            out.extend(self._cancel(rec, now, "dependency_failed", "a dependency was rolled back"))
            out.extend(self._pump(now))
            out.extend(self._finish_if_done())
            return out
        self.events.append({"event": "intent_answered", "call_id": call_id, "holder": holder,
                            "now": now})
        rec.claim_pending = False
        out: list[Command] = []
        key = (rec.call.tool, rec.call.idempotency_key)
        if holder is None or holder == call_id:
            rec.claimed = True
            self.ledger_keys[key] = call_id
            trigger = "approve" if rec.state is S.AWAITING_APPROVAL else "dispatch"
            out.extend(self._start(rec, trigger, now))
        else:
            self._release_slot(rec)
            out.extend(self._cancel(rec, now, "duplicate_irreversible",
                                    f"duplicate of {holder}: irreversible key already started live"))
        out.extend(self._pump(now))
        out.extend(self._finish_if_done())
        return out

    def execution_finished(self, call_id: str, result: ExecutionResult, now: float) -> list[Command]:
        rec = self._rec(call_id)
        if rec.state not in RUNNING:
            raise OrchestrationError(f"call {call_id!r} is not running (state {rec.state.value})")
        self.events.append({"event": "execution_finished", "call_id": call_id, "ok": result.ok,
                            "result": result.result, "error": result.error, "lost": result.lost,
                            "now": now})
        out: list[Command] = []
        call = rec.call
        mode = rec.mode or Mode.MOCK
        outcome = "lost" if result.lost else ("succeeded" if result.ok else "failed")
        exe = ExecutionRecord(
            call_id=call_id, plan_id=call.plan_id, agent_id=call.agent_id, tool=call.tool,
            mode=mode.label, risk=call.contract.risk.value, confidence=call.confidence,
            attempt=rec.attempt, start=rec.started_at, end=now,
            duration_ms=max(0.0, (now - rec.started_at) * 1000.0), outcome=outcome,
            error=result.error, result=result.result if result.ok else None,
            decision=self._provenance(rec), idempotency_key=call.idempotency_key,
            phase21_plan_id=call.phase21_plan_id, phase22_validation_id=call.phase22_validation_id,
        )
        self.executions.append(exe)
        self._release_slot(rec)
        guards = guard_set(
            None, retries_left=rec.retries_left, mode=mode,
            idempotent=call.contract.idempotent, reversible=call.contract.reversible,
        )
        if result.ok:
            rec.result = result.result
            self._fire(rec, "succeed", guards, now, "execution.succeeded", {"attempt": rec.attempt})
            self._completions += 1
            rec.completed = self._completions
        else:
            trigger = "lose" if result.lost else "fail"
            self._fire(rec, trigger, guards, now, f"execution.{outcome}",
                       {"attempt": rec.attempt, "error": result.error})
            rec.reason = result.error
            if rec.state is S.READY:
                blocker = self._retry_blocker(rec)
                if blocker is None:
                    rec.retries_left -= 1
                    self._enqueue(rec)
                else:
                    out.extend(self._cancel(rec, now, *blocker))
        self._on_anomalies(self.monitor.observe_execution(exe, conflicted=rec.conflicted), now, out)
        out.extend(self._after_settled(rec, now))
        waiting_plan = self._saga_waiting.pop(call_id, None)
        if waiting_plan is not None:  # a saga held back for this call may go on
            out.extend(self._saga_step(self._sagas[waiting_plan], now))
        out.extend(self._pump(now))
        out.extend(self._finish_if_done())
        return out

    def rollback_finished(self, call_id: str, result: ExecutionResult, now: float) -> list[Command]:
        rec = self._rec(call_id)
        if rec.state is not S.ROLLING_BACK:
            raise OrchestrationError(f"call {call_id!r} is not rolling back")
        self.events.append({"event": "rollback_finished", "call_id": call_id, "ok": result.ok,
                            "result": result.result, "error": result.error, "lost": result.lost,
                            "now": now})
        saga = self._sagas[rec.call.plan_id]
        out: list[Command] = []
        ok = result.ok and not result.lost
        trigger = "rollback_ok" if ok else "rollback_error"
        self._fire(rec, trigger, frozenset(), now, "saga." + ("rolled_back" if ok else "rollback_failed"),
                   {"error": result.error, "trigger_call": saga.trigger_call})
        spec = rec.call.contract.rollback
        ev = RollbackEvent(
            call_id=call_id, plan_id=rec.call.plan_id, tool=spec.tool if spec else "",
            args=saga.rollback_args, start=saga.rollback_started_at, end=now,
            outcome="rolled_back" if ok else "rollback_failed", error=result.error,
            trigger_call=saga.trigger_call,
        )
        self.rollbacks.append(ev)
        self._on_anomalies(self.monitor.observe_rollback(ev), now, out)
        if not ok:
            alert = Alert("rollback_failed", 8,
                          f"rollback of {call_id} failed: {result.error}; manual repair needed",
                          "alert", call_id)
            self.alerts.append(alert)
            out.append(alert)
        saga.current = None
        self._rollbacks_in_flight -= 1
        out.extend(self._saga_step(saga, now))
        out.extend(self._pump(now))
        out.extend(self._finish_if_done())
        return out

    def tick(self, now: float) -> list[Command]:
        """Time passes: approvals past their deadline count as denied (fail closed)."""
        out: list[Command] = []
        # Not logged as an event itself: each expiry is logged (and replayed) as the
        # approval_answered it becomes; logging both would replay it twice.
        for rid, appr in list(self._approvals.items()):
            if not appr.answered and now >= appr.request.deadline:
                out.extend(self.approval_answered(rid, False, "timeout", now, reason="timeout"))
        out.extend(self._finish_if_done())
        return out

    def lock(self, reason: str, by: str, now: float) -> list[Command]:
        self.events.append({"event": "lock", "reason": reason, "by": by, "now": now})
        return self._lock(reason, by, now)

    def _lock(self, reason: str, by: str, now: float) -> list[Command]:
        prev = self.system
        self.system = SYSTEM.fire(self.system, "lock")
        self.lock_reason, self.lock_by = reason, by
        self._record_system(prev, "lock", now, reason, by)
        return [SystemLocked(reason, by)]

    def unlock(self, reason: str, by: str, now: float) -> list[Command]:
        if not reason.strip():
            raise OrchestrationError("unlock needs a reason")
        self.events.append({"event": "unlock", "reason": reason, "by": by, "now": now})
        prev = self.system
        self.system = SYSTEM.fire(self.system, "unlock")
        self.lock_reason, self.lock_by = "", ""
        self._record_system(prev, "unlock", now, reason, by)
        out: list[Command] = [SystemUnlocked(reason, by)]
        out.extend(self._pump(now))
        return out

    def resolve(self, call_id: str, succeeded: bool, by: str, now: float) -> list[Command]:
        """An operator settles an ``outcome_unknown`` call."""
        rec = self._rec(call_id)
        guards = guard_set(None, resolved_succeeded=succeeded)
        if not CONTROLLER.allowed(rec.state, "resolve"):
            raise InvalidTransition(call_id, rec.state.value, "resolve", "only outcome_unknown calls are resolved")
        self.events.append({"event": "resolve", "call_id": call_id, "succeeded": succeeded,
                            "by": by, "now": now})
        self._fire(rec, "resolve", guards, now, "operator.resolve",
                   {"by": by, "outcome": "succeeded" if succeeded else "failed"})
        out = self._finish_if_done()
        return out

    def abort(self, reason: str, now: float) -> list[Command]:
        """Stop starting calls: everything not yet running is cancelled."""
        self.events.append({"event": "abort", "reason": reason, "now": now})
        self._aborted = True
        out: list[Command] = []
        for cid in self.order:
            rec = self.calls[cid]
            if rec.state in (S.PROPOSED, S.WAITING, S.READY, S.AWAITING_APPROVAL):
                if rec.claim_pending:
                    rec.claim_pending = False
                    self._release_slot(rec)
                out.extend(self._cancel(rec, now, "run_aborted", reason))
        for appr in self._approvals.values():
            self._close_approval(appr)
        for saga in self._sagas.values():
            saga.queue.clear()
        out.extend(self._finish_if_done())
        return out

    # ----------------------------------------------------------------- resume

    def replay_events(self, plans: PlanSet, events: Iterable[dict[str, Any]]) -> None:
        """Rebuild the state of a crashed run: feed its logged events to this fresh
        orchestrator (built with the same catalog, policy, ledger snapshot and lock
        state). Commands are discarded: they were carried out, or are re-derived by
        ``outstanding``."""
        for ev in events:
            kind, now = ev["event"], ev["now"]
            if kind == "submit":
                self.submit(plans, now)
            elif kind in ("execution_finished", "rollback_finished"):
                res = ExecutionResult(ok=ev["ok"], result=ev["result"], error=ev["error"], lost=ev["lost"])
                getattr(self, kind)(ev["call_id"], res, now)
            elif kind == "approval_answered":
                self.approval_answered(ev["request_id"], ev["granted"], ev["by"], now, reason=ev["reason"])
            elif kind == "intent_answered":
                self.intent_answered(ev["call_id"], ev["holder"], now)
            elif kind == "tick":
                self.tick(now)
            elif kind in ("lock", "unlock"):
                getattr(self, kind)(ev["reason"], ev["by"], now)
            elif kind == "resolve":
                self.resolve(ev["call_id"], ev["succeeded"], ev["by"], now)
            elif kind == "abort":
                self.abort(ev["reason"], now)
            else:
                raise OrchestrationError(f"unknown event {kind!r} in the log")

    def outstanding(self, now: float) -> list[Command]:
        """After ``replay_events``: what a crash left unanswered, as commands again.

        Rule F (I4): a LIVE call of a non-idempotent tool that was running may have
        had its side effect; it is never re-executed: its outcome is lost
        (``outcome_unknown``). Idempotent LIVE calls, dry runs and mocks run again;
        claims, approvals and compensations are asked again (a claim by the same
        call is granted again by the ledger).
        """
        # Snapshot first: settling a lost call below may itself start a saga or a
        # dispatch, whose commands come back with it and must not be issued twice.
        running = [self.calls[c] for c in self.order if self.calls[c].state in RUNNING]
        claims = [self.calls[c] for c in self.order if self.calls[c].claim_pending]
        approvals = [a.request for a in self._approvals.values() if not a.answered]
        rollbacks = [s for s in self._sagas.values() if s.current is not None]
        out: list[Command] = list(approvals)
        for rec in claims:
            out.append(ClaimIntent(rec.call.call_id, rec.call.idempotency_key, rec.call.tool))
        for saga in rollbacks:
            r = self.calls[saga.current]
            spec = r.call.contract.rollback
            comp = self.catalog.get(spec.tool) if spec else None
            if comp is not None and comp.idempotent:
                out.append(Rollback(saga.current, spec.tool, saga.rollback_args, comp.timeout_s))
            else:
                # The compensation may have run; a non-idempotent one is not run again (I7).
                out.extend(self.rollback_finished(saga.current, ExecutionResult(
                    ok=False, lost=True,
                    error="interlock stopped during the rollback; its outcome is unknown: check by hand"), now))
        for rec in running:
            call = rec.call
            d = self._decide(rec)
            still = (rec.mode is Mode.MOCK or (rec.mode is Mode.DRY_RUN and d.dry_run_permitted)
                     or (rec.mode is Mode.LIVE and d.live_permitted and call.contract.idempotent))
            if not still:
                # Never re-run what is no longer permitted (I1, I2) or not idempotent (I4).
                out.extend(self.execution_finished(call.call_id, ExecutionResult(
                    ok=False, lost=True, error="interlock stopped while it ran: outcome unknown"), now))
            else:
                out.append(Execute(call.call_id, call.tool, dict(call.args), rec.mode or Mode.MOCK,
                                   rec.attempt, call.contract.timeout_s))
        out.extend(self._pump(now))
        out.extend(self._finish_if_done())
        return out

    # --------------------------------------------------------------- internals

    def _rec(self, call_id: str) -> CallRecord:
        try:
            return self.calls[call_id]
        except KeyError:
            raise OrchestrationError(f"unknown call {call_id!r}") from None

    def _fire(self, rec: CallRecord, trigger: str, guards: frozenset, now: float,
              rule: str, detail: dict[str, Any]) -> State:
        src = rec.state
        dst = CONTROLLER.fire(src, trigger, guards, call_id=rec.call.call_id)
        rec.state = dst
        self._open_calls += (src in FINAL) - (dst in FINAL)
        rec.rule = rule
        call = rec.call
        self.transitions.append(TransitionRecord(
            seq=len(self.transitions), time=now, machine="call", call_id=call.call_id,
            plan_id=call.plan_id, agent_id=call.agent_id, src=src.value, trigger=trigger,
            dst=dst.value, rule=rule, detail=detail,
        ))
        return dst

    def _close_approval(self, appr: _Approval) -> None:
        if not appr.answered:
            appr.answered = True
            self._open_approvals -= 1

    def _record_system(self, prev: SystemState, trigger: str, now: float, reason: str, by: str) -> None:
        self.transitions.append(TransitionRecord(
            seq=len(self.transitions), time=now, machine="system", call_id=None, plan_id=None,
            agent_id=None, src=prev.value, trigger=trigger, dst=self.system.value,
            rule=f"system.{trigger}", detail={"reason": reason, "by": by},
        ))

    def _decide(self, rec: CallRecord) -> Decision:
        call = rec.call
        holder = self.ledger_keys.get((call.tool, call.idempotency_key))
        dup = call.contract.guarded_once and holder is not None and holder != call.call_id
        d = decide(call.contract, call.confidence, self.policy, locked=self.locked,
                   duplicate_started=dup)
        rec.decision = d
        return d

    def _provenance(self, rec: CallRecord) -> dict[str, Any]:
        d = rec.decision.provenance() if rec.decision else {}
        d["rule"] = rec.mode_rule
        d["mode"] = rec.mode.label if rec.mode is not None else None
        d["approved_by"] = rec.approved_by
        return d

    def _guards(self, rec: CallRecord, decision: Decision) -> frozenset:
        return guard_set(
            decision,
            approval_granted=rec.approval_granted,
            on_denied=self.policy.approval.on_denied,
            retries_left=rec.retries_left,
            mode=rec.mode,
            idempotent=rec.call.contract.idempotent,
            reversible=rec.call.contract.reversible,
        )

    def _maybe_release(self, rec: CallRecord, now: float) -> None:
        if (rec.state is S.WAITING and rec.pending_deps == 0 and rec.pending_order == 0
                and rec.pending_escalations == 0 and not self._aborted):
            self._fire(rec, "release", frozenset(), now, "dependencies_met", {})
            self._enqueue(rec)

    def _enqueue(self, rec: CallRecord) -> None:
        heapq.heappush(self._ready, (-rec.call.priority, rec.call.seq, rec.call.call_id))

    def _tool_limit(self, tool: str) -> int | None:
        return self.catalog.by_name[tool].max_concurrency

    def _pump(self, now: float) -> list[Command]:
        """Dispatch ready calls in priority-then-submission order within the limits."""
        out: list[Command] = []
        if self._aborted:
            return out  # nothing new starts after an abort
        limit = self.policy.max_concurrency
        # Tools with free slots hand them to the best calls waiting for them: as many
        # as there are free slots (re-queueing every blocked call would be quadratic).
        # Every tool with waiting calls is looked at: O(tools) per event, and no path
        # can leave a call waiting for a slot that is free.
        for tool, blocked in self._blocked_by_tool.items():
            if not blocked:
                continue
            tlimit = self._tool_limit(tool)
            free = (tlimit or 0) - self._running_by_tool.get(tool, 0)
            while blocked and free > 0:
                entry = heapq.heappop(blocked)
                waiting = self.calls[entry[2]]
                if waiting.state is S.READY or (waiting.state is S.AWAITING_APPROVAL and waiting.answer):
                    heapq.heappush(self._ready, entry)
                    free -= 1
        while self._ready and self._running < limit:
            entry = heapq.heappop(self._ready)
            rec = self.calls[entry[2]]
            if rec.claim_pending or not (
                    rec.state is S.READY or (rec.state is S.AWAITING_APPROVAL and rec.answer)):
                continue
            tool = rec.call.tool
            tlimit = self._tool_limit(tool)
            if tlimit is not None and self._running_by_tool.get(tool, 0) >= tlimit:
                heapq.heappush(self._blocked_by_tool.setdefault(tool, []), entry)
                continue
            if rec.state is S.READY:
                out.extend(self._dispatch(rec, now))
            else:
                self._take_slot(rec)
                out.extend(self._start(rec, "approve", now) if rec.approval_granted
                           else self._deny(rec, now))
        return out

    def _take_slot(self, rec: CallRecord) -> None:
        self._running += 1
        tool = rec.call.tool
        self._running_by_tool[tool] = self._running_by_tool.get(tool, 0) + 1

    def _release_slot(self, rec: CallRecord) -> None:
        self._running -= 1
        tool = rec.call.tool
        self._running_by_tool[tool] -= 1  # _pump hands the free slot to a call waiting for it

    def _needs_claim(self, rec: CallRecord, dest: State) -> bool:
        return dest is S.RUNNING_LIVE and rec.call.contract.guarded_once and not rec.claimed

    def _dispatch(self, rec: CallRecord, now: float) -> list[Command]:
        decision = self._decide(rec)
        guards = self._guards(rec, decision)
        dest = CONTROLLER.fire(rec.state, "dispatch", guards, call_id=rec.call.call_id)
        if dest is S.AWAITING_APPROVAL:
            self._fire(rec, "dispatch", guards, now, "approval.required",
                       decision.provenance())
            call = rec.call
            req = RequestApproval(
                request_id=f"{self.run_id}:{call.call_id}:{rec.attempt}",
                kind="live", call_ids=(call.call_id,), tool=call.tool,
                risk=call.contract.risk.value, confidence=call.confidence,
                agent_id=call.agent_id, plan_id=call.plan_id, args=dict(call.args),
                reason=f"LIVE {call.tool} at risk {call.contract.risk.value} needs approval",
                deadline=now + self.policy.approval.timeout_s,
            )
            self._approvals[req.request_id] = _Approval(req)
            self._open_approvals += 1
            rec.request_id = req.request_id
            return [req]
        self._take_slot(rec)
        return self._start(rec, "dispatch", now)

    def _start(self, rec: CallRecord, trigger: str, now: float) -> list[Command]:
        """Fire ``dispatch``/``approve`` into a running state and emit ``Execute``.

        The caller holds a concurrency slot. The decision is re-evaluated here,
        at the moment of starting (I1, I2); an irreversible LIVE start is first
        claimed in the ledger (Rule C) and resumes in ``intent_answered``.
        """
        decision = self._decide(rec)
        guards = self._guards(rec, decision)
        dest = CONTROLLER.fire(rec.state, trigger, guards, call_id=rec.call.call_id)
        out: list[Command] = []
        if self._needs_claim(rec, dest):
            rec.claim_pending = True
            return [ClaimIntent(rec.call.call_id, rec.call.idempotency_key, rec.call.tool)]
        if rec.claimed and not rec.went_live and dest is not S.RUNNING_LIVE:
            # Claimed for LIVE but the decision changed (e.g. locked meanwhile) before
            # any attempt went LIVE. (A key that went LIVE is never given back: I4.)
            key = rec.call.idempotency_key
            out.append(ReleaseIntent(rec.call.call_id, key))
            if self.ledger_keys.get((rec.call.tool, key)) == rec.call.call_id:
                del self.ledger_keys[(rec.call.tool, key)]
            rec.claimed = False
        if dest is S.AWAITING_APPROVAL:  # pragma: no cover - guarded by the approval flag
            raise OrchestrationError("approval requested twice")
        mode = Mode(MODE_OF_STATE[dest])
        rec.mode = mode
        if trigger == "approve" and mode is Mode.LIVE:
            rule = "approval_granted"
        else:
            rule = decision.rule_for(mode)
        detail = decision.provenance()
        detail.update({"mode": mode.label, "attempt": rec.attempt + 1, "approved_by": rec.approved_by})
        self._launch(rec, trigger, guards, now, rule, detail, out)
        if trigger == "approve":
            # Observed when the transition fires, so the log's order is the monitor's.
            self._on_anomalies(self.monitor.observe_approval(True, now), now, out)
        return out

    def _launch(self, rec: CallRecord, trigger: str, guards: frozenset, now: float, rule: str,
                detail: dict[str, Any], out: list[Command]) -> None:
        """Fire into a running state (``rec.mode`` set by the caller) and emit ``Execute``."""
        rec.mode_rule = rule
        self._fire(rec, trigger, guards, now, rule, detail)
        rec.went_live = rec.went_live or rec.mode is Mode.LIVE
        rec.attempt += 1
        rec.started_at = now
        call = rec.call
        out.append(Execute(call.call_id, call.tool, dict(call.args), rec.mode, rec.attempt,
                           call.contract.timeout_s))

    def _deny(self, rec: CallRecord, now: float) -> list[Command]:
        """Follow ``on_denied``. A slot is held unless the policy cancels (no slot needed)."""
        granted, by, rule, reason = rec.answer or (False, "unknown", "approval_denied", "")
        decision = self._decide(rec)
        on_denied = self.policy.approval.on_denied
        guards = guard_set(decision, approval_granted=False, on_denied=on_denied)
        dest = CONTROLLER.fire(rec.state, "deny", guards, call_id=rec.call.call_id)
        detail = decision.provenance()
        detail.update({"by": by, "reason": reason, "on_denied": on_denied.value})
        out: list[Command] = []
        self._on_anomalies(self.monitor.observe_approval(False, now), now, out)
        if dest is S.CANCELLED:
            self._fire(rec, "deny", guards, now, rule, detail)
            rec.reason = f"approval denied by {by}: {reason}".rstrip(": ")
            out.append(Cancelled(rec.call.call_id, rec.state.value, rec.reason))
            out.extend(self._after_settled(rec, now))
            return out
        mode = Mode(MODE_OF_STATE[dest])
        rec.mode = mode
        detail.update({"mode": mode.label, "attempt": rec.attempt + 1})
        self._launch(rec, "deny", guards, now, rule, detail, out)
        return out

    def _cancel(self, rec: CallRecord, now: float, rule: str, reason: str) -> list[Command]:
        """Cancel a call that has not started, then everything that needed it (Rule A)."""
        out: list[Command] = []
        stack = [(rec, rule, reason)]
        while stack:
            r, ru, why = stack.pop()
            if r.state in FINAL:
                continue
            if r.state is S.AWAITING_APPROVAL and r.request_id in self._approvals:
                self._close_approval(self._approvals[r.request_id])
            self._fire(r, "cancel", frozenset(), now, ru, {"reason": why})
            r.reason = why
            out.append(Cancelled(r.call.call_id, r.state.value, why))
            for dep_id in r.dependents:
                d = self.calls[dep_id]
                if d.state not in FINAL:
                    stack.append((d, "dependency_failed",
                                  f"dependency {r.call.call_id} ended {r.state.value}"))
            out.extend(self._release_successors(r, now))
        return out

    def _retry_blocker(self, rec: CallRecord) -> tuple[str, str] | None:
        """Why a failed attempt must not be retried now: the run was aborted, its plan
        failed (the saga waits for it, Rule D), or a dependency no longer succeeded (I5)."""
        if self._aborted:
            return "run_aborted", "the run was aborted before the retry"
        plan = rec.call.plan_id
        if plan in self._failed_plans and rec.call.on_failure is OnFailure.ROLLBACK:
            return "plan_failed", f"plan {plan} failed; no retry during its saga"
        for d in rec.call.deps:
            st = self.calls[d].state
            if st is not S.SUCCEEDED and st is not S.REJECTED:
                return "dependency_failed", f"dependency {d} is {st.value}; no retry"
        return None

    def _cancel_unstarted_dependents(self, rec: CallRecord, now: float) -> list[Command]:
        """I5: a dependency that is being undone no longer counts as succeeded; whatever
        needed it and has not started yet never starts. (What already ran is not undone.)"""
        out: list[Command] = []
        for dep_id in rec.dependents:
            d = self.calls[dep_id]
            if d.state in (S.WAITING, S.READY, S.AWAITING_APPROVAL) and not d.claim_pending:
                out.extend(self._cancel(d, now, "dependency_failed",
                                        f"dependency {rec.call.call_id} is being rolled back"))
        return out

    def _release_successors(self, rec: CallRecord, now: float) -> list[Command]:
        """Rule B (I6): successors in a serialize chain may go once this call is settled.

        A call that settles without having run (cancelled at run time, e.g. an
        escalation denied) may still have predecessors that are running: its
        successors inherit them, so the chain stays ordered end to end."""
        rec.order_released = True
        rec.released_to.extend(rec.successors)
        waiting_on = [p for p in rec.predecessors if not self.calls[p].order_released]
        for succ in rec.successors:
            s = self.calls[succ]
            for p in waiting_on:
                self.calls[p].successors.append(succ)
                s.predecessors.append(p)
                s.pending_order += 1
            s.pending_order -= 1
            self._maybe_release(s, now)
        rec.successors = []
        return []

    def _after_settled(self, rec: CallRecord, now: float) -> list[Command]:
        """Consequences of a call leaving ``running``: deps, order edges, the saga."""
        out: list[Command] = []
        state = rec.state
        if state is S.READY:  # a retry: still holds its place in the order
            return out
        if state is S.SUCCEEDED:
            for dep_id in rec.dependents:  # kept: a later rollback cancels those not started
                d = self.calls[dep_id]
                d.pending_deps -= 1
                self._maybe_release(d, now)
            self._release_successors(rec, now)
            saga = self._sagas.get(rec.call.plan_id)
            if saga is not None:
                out.extend(self._saga_step(saga, now))
            return out
        # failed, outcome_unknown, cancelled (by deny): dependents cannot run (I5).
        for dep_id in rec.dependents:
            d = self.calls[dep_id]
            if d.state not in FINAL:
                out.extend(self._cancel(d, now, "dependency_failed",
                                        f"dependency {rec.call.call_id} ended {state.value}"))
        rec.dependents = []
        self._release_successors(rec, now)
        if state is S.OUTCOME_UNKNOWN:
            alert = Alert("outcome_unknown", 8,
                          f"{rec.call.call_id}: LIVE outcome lost; not retried; resolve it with "
                          "`interlock resolve`", "alert", rec.call.call_id)
            self.alerts.append(alert)
            out.append(alert)
        if state in (S.FAILED, S.OUTCOME_UNKNOWN):
            out.extend(self._plan_failed(rec, now))
        else:
            saga = self._sagas.get(rec.call.plan_id)
            if saga is not None:
                out.extend(self._saga_step(saga, now))
        return out

    def _plan_failed(self, rec: CallRecord, now: float) -> list[Command]:
        plan_id = rec.call.plan_id
        if plan_id in self._failed_plans:
            saga = self._sagas.get(plan_id)
            return self._saga_step(saga, now) if saga else []
        self._failed_plans.add(plan_id)
        if rec.call.on_failure is OnFailure.KEEP:
            return []
        out: list[Command] = []
        for r in self._by_plan[plan_id]:
            if r.state in (S.WAITING, S.READY, S.AWAITING_APPROVAL) and not r.claim_pending:
                out.extend(self._cancel(r, now, "plan_failed",
                                        f"plan {plan_id} failed at {rec.call.call_id}; saga"))
        saga = _Saga(plan_id=plan_id, trigger_call=rec.call.call_id)
        self._sagas[plan_id] = saga
        out.extend(self._saga_step(saga, now))
        return out

    def _saga_step(self, saga: _Saga, now: float) -> list[Command]:
        """Start or continue compensation once no call of the plan is running (Rule D)."""
        if saga.current is not None:
            return []
        plan_calls = self._by_plan[saga.plan_id]
        if any(r.state in RUNNING or r.claim_pending for r in plan_calls):
            return []
        out: list[Command] = []
        if not saga.started:
            saga.started = True
            done = sorted((r for r in plan_calls if r.state is S.SUCCEEDED and r.mode is Mode.LIVE),
                          key=lambda r: -r.completed)
            for r in done:
                if r.call.contract.reversible and r.call.contract.rollback is not None:
                    saga.queue.append(r.call.call_id)
                else:
                    self.rollbacks.append(RollbackEvent(
                        call_id=r.call.call_id, plan_id=saga.plan_id, tool="", args={},
                        start=now, end=now, outcome="not_reversible",
                        error="irreversible: listed, never rolled back",
                        trigger_call=saga.trigger_call,
                    ))
        while saga.queue and saga.current is None:
            r = self.calls[saga.queue[0]]
            busy = [s for s in r.released_to if self.calls[s].state in RUNNING]
            if busy:
                # I6: never compensate while a call serialized after this one is still
                # running on the same resource; resume when its attempt ends.
                self._saga_waiting[busy[0]] = saga.plan_id
                break
            cid = saga.queue.pop(0)
            spec = r.call.contract.rollback
            assert spec is not None
            guards = guard_set(None, mode=r.mode, reversible=r.call.contract.reversible)
            try:
                args = expand_value(spec.args, r.call.args, r.result)
            except (KeyError, ValueError, TypeError) as exc:
                self._fire(r, "rollback", guards, now, "saga.rollback",
                           {"trigger_call": saga.trigger_call})
                out.extend(self._cancel_unstarted_dependents(r, now))
                self._fire(r, "rollback_error", frozenset(), now, "saga.rollback_failed",
                           {"error": f"cannot build rollback args: {exc}"})
                self.rollbacks.append(RollbackEvent(
                    call_id=cid, plan_id=saga.plan_id, tool=spec.tool, args={}, start=now, end=now,
                    outcome="rollback_failed", error=f"cannot build rollback args: {exc}",
                    trigger_call=saga.trigger_call,
                ))
                alert = Alert("rollback_failed", 8, f"rollback of {cid} failed: {exc}", "alert", cid)
                self.alerts.append(alert)
                out.append(alert)
                continue
            self._fire(r, "rollback", guards, now, "saga.rollback",
                       {"trigger_call": saga.trigger_call, "tool": spec.tool, "args": args})
            out.extend(self._cancel_unstarted_dependents(r, now))
            saga.current = cid
            self._rollbacks_in_flight += 1
            saga.rollback_started_at = now
            saga.rollback_args = args
            comp = self.catalog.get(spec.tool)
            out.append(Rollback(cid, spec.tool, args, comp.timeout_s if comp else 30.0))
        return out

    def _escalation_answered(self, request_id: str, granted: bool, by: str, now: float,
                             reason: str) -> list[Command]:
        esc = self._escalation_of[request_id]
        out: list[Command] = []
        self.conflicts = [
            attrs.evolve(c, outcome=("escalated: granted by " if granted else "escalated: denied by ") + by)
            if c.id == esc.conflict_id else c
            for c in self.conflicts
        ]
        for cid in esc.call_ids:
            rec = self.calls[cid]
            if rec.state is not S.WAITING:
                continue
            rec.pending_escalations -= 1
            if granted:
                # Rejected dependencies were never counted in pending_deps; granting
                # the escalation is what lets the call go without them.
                self._maybe_release(rec, now)
            else:
                why = f"escalated conflict {esc.conflict_id} not approved ({reason or 'denied'} by {by})"
                out.extend(self._cancel(rec, now, "escalation_denied", why))
        return out

    def _on_anomalies(self, anomalies: Iterable[AnomalyRecord], now: float, out: list[Command]) -> None:
        """Anomalies become records and ``Alert`` commands; ``lock`` actions lock (I2)."""
        for an in anomalies:
            self.anomalies.append(an)
            alert = Alert(an.kind, an.severity, an.message, an.action)
            self.alerts.append(alert)
            out.append(alert)
            if an.action == "lock" and not self.locked:
                out.extend(self._lock(f"anomaly {an.kind}: {an.message}", "monitor", now))

    def _finish_if_done(self) -> list[Command]:
        if self.done and not self._finished_emitted:
            self._finished_emitted = True
            return [RunFinished(self.exit_code())]
        return []
