"""Stateful checks of the orchestrator: I1, I2, I4, I5, I6, I7, I8, I9.

Random catalogs and multi-agent plans (shared resources, duplicate irreversible
keys, cross-plan dependencies, retries) are submitted, then random
interleavings of answers — completions, failures, lost outcomes, approvals,
denials, timeouts, ledger refusals, rollbacks, lock/unlock — are fed back.
The model is what a careful auditor would write: the set of calls running,
who claimed which key, which grants were recorded, what was compensated.
"""

from __future__ import annotations

from hypothesis import note, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from interlock.core.commands import (
    Alert, Cancelled, ClaimIntent, Execute, ReleaseIntent, RequestApproval, Rollback,
    RunFinished, SystemLocked, SystemUnlocked,
)
from interlock.core.controller.decision import decide
from interlock.core.controller.states import FINAL, TERMINAL, State
from interlock.core.model import (
    ApprovalPolicy, Catalog, ConflictPolicy, Effects, LockMode, Mode, OnDenied, OnFailure, Plan,
    PlanSet, Policy, Risk, RollbackSpec, Step, Strategy, ToolContract,
)
from interlock.core.orchestrator import Orchestrator
from interlock.core.ports import ExecutionResult

RISKS = [Risk.LOW, Risk.MEDIUM, Risk.HIGH]


@st.composite
def catalogs(draw):
    n = draw(st.integers(2, 5))
    tools = [ToolContract(name="undo", risk=Risk.LOW, reversible=False, idempotent=True,
                          input_schema=None, mock_result={"undone": True})]
    for i in range(n):
        reversible = draw(st.booleans())
        kind = draw(st.sampled_from(["write", "read", "none"]))
        effects = Effects(writes=("r:{k}",)) if kind == "write" else (
            Effects(reads=("r:{k}",)) if kind == "read" else Effects())
        tools.append(ToolContract(
            name=f"t{i}", risk=draw(st.sampled_from(RISKS)), reversible=reversible,
            rollback=RollbackSpec("undo", {"k": "{k}"}) if reversible else None,
            idempotent=draw(st.booleans()), supports_dry_run=draw(st.booleans()),
            effects=effects, max_concurrency=draw(st.sampled_from([None, 1, 2])),
            retries=draw(st.integers(0, 2)), mock_result={"ok": True},
        ))
    return Catalog(tools=tuple(tools))


@st.composite
def plansets(draw, catalog):
    names = [t.name for t in catalog.tools if t.name != "undo"]
    plans, all_ids = [], []
    for p in range(draw(st.integers(1, 3))):
        steps = []
        for s in range(draw(st.integers(1, 4))):
            sid = f"s{s}"
            after = []
            if s and draw(st.booleans()):
                after.append(f"s{draw(st.integers(0, s - 1))}")
            if all_ids and draw(st.integers(0, 4)) == 0:
                after.append(draw(st.sampled_from(all_ids)))
            steps.append(Step(
                id=sid, tool=draw(st.sampled_from(names)),
                confidence=draw(st.sampled_from([0.0, 0.3, 0.5, 0.75, 0.9, 1.0])),
                args={"k": draw(st.sampled_from(["a", "b", "c"]))},
                after=tuple(after),
                idempotency_key=draw(st.sampled_from([None, "dup"])),
            ))
        pid = f"p{p}"
        plans.append(Plan(plan_id=pid, agent_id=f"agent{p % 2}", steps=tuple(steps),
                          priority=draw(st.integers(0, 3)),
                          on_failure=draw(st.sampled_from([OnFailure.ROLLBACK, OnFailure.KEEP]))))
        all_ids.extend(f"{pid}/{s.id}" for s in steps)
    return PlanSet(plans=tuple(plans))


@st.composite
def policies(draw):
    return Policy(
        allow_live=draw(st.booleans()),
        lock_mode=draw(st.sampled_from(list(LockMode))),
        max_concurrency=draw(st.integers(1, 4)),
        approval=ApprovalPolicy(
            required_for=draw(st.sampled_from([(), (Risk.HIGH,), (Risk.MEDIUM, Risk.HIGH)])),
            timeout_s=10.0, on_denied=draw(st.sampled_from(list(OnDenied)))),
        conflicts=ConflictPolicy(
            write_write=draw(st.sampled_from([Strategy.SERIALIZE, Strategy.PRIORITY, Strategy.ESCALATE])),
            read_write=draw(st.sampled_from([Strategy.SERIALIZE, Strategy.PRIORITY, Strategy.ESCALATE])),
            duplicate_irreversible=draw(st.sampled_from(
                [Strategy.DEDUPLICATE, Strategy.SERIALIZE, Strategy.ESCALATE])),
        ),
    )


def _conflicting(a, b) -> bool:
    """Two calls that may not run at the same time (I6)."""
    return bool(set(a.writes) & (set(b.writes) | set(b.reads)) or set(a.reads) & set(b.writes))


class OrchestratorMachine(RuleBasedStateMachine):
    @initialize(data=st.data())
    def setup(self, data):
        self.catalog = data.draw(catalogs(), label="catalog")
        self.policy = data.draw(policies(), label="policy")
        planset = data.draw(plansets(self.catalog), label="plans")
        pre = data.draw(st.sampled_from([{}, {("t0", "dup"): "old-run/x"}]), label="ledger")
        self.ledger = dict(pre)
        self.now = 0.0
        self.planset, self.pre = planset, dict(pre)
        self.orch = Orchestrator(self.catalog, self.policy, run_id="r", ledger=pre)
        self.outstanding: list = []  # commands waiting for an answer
        self.running: set[str] = set()
        self.live_starts: dict[tuple[str, str], set[str]] = {}
        self.live_count: dict[str, int] = {}
        self.grants: set[str] = set()
        self.rolled_back: list[str] = []
        self.finished = False
        self._take(self.orch.submit(planset, self.now))

    # -- the oracle's checks on every command the orchestrator emits --------

    def _take(self, cmds):
        for cmd in cmds:
            note(repr(cmd))
            self.history = (getattr(self, "history", []) + [type(cmd).__name__ + ":" + str(getattr(cmd, "call_id", ""))])[-25:]
            if isinstance(cmd, (Execute, ClaimIntent, Rollback)):
                rec = self.orch.calls[cmd.call_id]
                if not isinstance(cmd, Rollback):
                    # no command for a cancelled or rejected call
                    assert rec.state not in TERMINAL, f"{cmd} for a {rec.state} call"
            if isinstance(cmd, Execute):
                rec = self.orch.calls[cmd.call_id]
                call = rec.call
                # I5: every dependency succeeded before the call starts
                for dep in call.deps:
                    assert self.orch.calls[dep].state is State.SUCCEEDED, (cmd.call_id, dep)
                # I6: nothing conflicting is running
                for other in self.running:
                    assert not _conflicting(call, self.orch.calls[other].call), (
                        call.call_id, other, self.orch.calls[other].state.value,
                        [(t.call_id, t.src, t.trigger, t.dst, t.rule) for t in self.orch.transitions
                         if t.call_id in (call.call_id, other)],
                        self.orch.intake_result.order_edges, [c for c in self.orch.conflicts],
                        getattr(self, "history", []))
                self.running.add(cmd.call_id)
                if cmd.mode is Mode.LIVE:
                    # I1 / I2: LIVE only when permitted now, and approved where required
                    assert not self.orch.locked
                    d = decide(call.contract, call.confidence, self.policy, locked=False)
                    assert d.live_permitted
                    if d.approval_required:
                        assert cmd.call_id in self.grants
                    self.live_count[cmd.call_id] = self.live_count.get(cmd.call_id, 0) + 1
                    if call.contract.guarded_once:
                        key = (call.tool, call.idempotency_key)
                        holders = self.live_starts.setdefault(key, set())
                        holders.add(cmd.call_id)
                        # I4: one call per irreversible key, ever
                        assert len(holders) == 1, holders
                        assert self.ledger.get(key) == cmd.call_id
                        if not call.contract.idempotent:
                            assert self.live_count[cmd.call_id] == 1
                if cmd.mode is Mode.DRY_RUN and self.orch.locked:
                    assert self.policy.lock_mode is LockMode.DRY_RUN  # I2
                self.outstanding.append(cmd)
            elif isinstance(cmd, ClaimIntent):
                key = (cmd.tool, cmd.key)
                holder = self.ledger.setdefault(key, cmd.call_id)
                self._take(self.orch.intent_answered(
                    cmd.call_id, None if holder == cmd.call_id else holder, self.now))
            elif isinstance(cmd, ReleaseIntent):
                rec = self.orch.calls[cmd.call_id]
                key = (rec.call.tool, cmd.key)
                if self.ledger.get(key) == cmd.call_id:
                    del self.ledger[key]
            elif isinstance(cmd, Rollback):
                rec = self.orch.calls[cmd.call_id]
                # I7: only LIVE, reversible, succeeded calls; each at most once
                assert rec.mode is Mode.LIVE and rec.call.contract.reversible
                assert cmd.call_id not in self.rolled_back
                self.rolled_back.append(cmd.call_id)
                self.outstanding.append(cmd)
            elif isinstance(cmd, RequestApproval):
                self.outstanding.append(cmd)
            elif isinstance(cmd, RunFinished):
                assert not self.finished
                self.finished = True

    # -- answers --------------------------------------------------------------

    def _pick(self, data, kinds):
        cands = [c for c in self.outstanding if isinstance(c, kinds)]
        if not cands:
            return None
        cmd = data.draw(st.sampled_from(cands))
        self.outstanding.remove(cmd)
        return cmd

    @precondition(lambda self: any(isinstance(c, Execute) for c in self.outstanding))
    @rule(data=st.data(), outcome=st.sampled_from(["ok", "ok", "fail", "lost"]))
    def finish_execution(self, data, outcome):
        cmd = self._pick(data, Execute)
        self.now += 1
        self.running.discard(cmd.call_id)
        res = ExecutionResult(ok=outcome == "ok", result={"r": 1} if outcome == "ok" else None,
                              error=None if outcome == "ok" else "boom", lost=outcome == "lost")
        self._take(self.orch.execution_finished(cmd.call_id, res, self.now))

    @precondition(lambda self: any(isinstance(c, Rollback) for c in self.outstanding))
    @rule(data=st.data(), ok=st.booleans())
    def finish_rollback(self, data, ok):
        cmd = self._pick(data, Rollback)
        self.now += 1
        self._take(self.orch.rollback_finished(
            cmd.call_id, ExecutionResult(ok=ok, error=None if ok else "undo failed"), self.now))

    @precondition(lambda self: any(isinstance(c, RequestApproval) for c in self.outstanding))
    @rule(data=st.data(), granted=st.booleans())
    def answer_approval(self, data, granted):
        cmd = self._pick(data, RequestApproval)
        self.now += 1
        if granted and cmd.kind == "live":
            self.grants.add(cmd.call_ids[0])
        self._take(self.orch.approval_answered(cmd.request_id, granted, "tester", self.now))

    @rule()
    def time_passes(self):
        self.now += 11  # past every approval deadline (timeout_s = 10): fail closed
        self.outstanding = [c for c in self.outstanding if not isinstance(c, RequestApproval)]
        self._take(self.orch.tick(self.now))

    @rule()
    def crash_and_resume(self):
        """The process dies: a fresh orchestrator is rebuilt from the event log and
        re-issues what was unanswered. The durable ledger survives; nothing in
        flight is answered by the old process (I4, I9 across crashes)."""
        again = Orchestrator(self.catalog, self.policy, run_id="r", ledger=self.pre)
        again.replay_events(self.planset, self.orch.events)
        assert again.transitions == self.orch.transitions
        self.orch = again
        # A compensation in flight at the crash is asked again (once) if its tool is idempotent.
        self.rolled_back = [c for c in self.rolled_back if again.calls[c].state is not State.ROLLING_BACK]
        self.outstanding = []
        self.running = set()
        self.now += 1  # (RunFinished, if it was emitted before the crash, is not emitted again)
        self._take(again.outstanding(self.now))

    @rule()
    def lock(self):
        self._take(self.orch.lock("test", "operator", self.now))

    @precondition(lambda self: self.orch.locked)
    @rule()
    def unlock(self):
        self._take(self.orch.unlock("test over", "operator", self.now))

    # -- invariants -----------------------------------------------------------

    @invariant()
    def terminal_states_absorb(self):
        """I8: no transition leaves a terminal state; succeeded leaves only for rolling_back."""
        seen: dict[str, str] = {}
        for t in self.orch.transitions:
            if t.machine != "call":
                continue
            assert State(t.src) not in TERMINAL, t
            if t.src == State.SUCCEEDED.value:
                assert t.dst == State.ROLLING_BACK.value, t
            if t.src == State.OUTCOME_UNKNOWN.value:
                assert t.trigger == "resolve", t
            if t.call_id in seen:
                assert seen[t.call_id] == t.src, (seen[t.call_id], t)
            seen[t.call_id] = t.dst

    @invariant()
    def done_counters_match_their_definition(self):
        """`done` is kept by counters (O(1) per event); they must equal the definition."""
        o = self.orch
        assert o._open_calls == sum(1 for r in o.calls.values() if r.state not in FINAL)
        assert o._open_approvals == sum(1 for a in o._approvals.values() if not a.answered)
        assert o._rollbacks_in_flight == sum(1 for s in o._sagas.values() if s.current is not None)

    @invariant()
    def saga_order(self):
        """I7: within a plan, compensations run in reverse completion order."""
        by_plan: dict[str, list[int]] = {}
        for cid in self.rolled_back:
            rec = self.orch.calls[cid]
            by_plan.setdefault(rec.call.plan_id, []).append(rec.completed)
        for order in by_plan.values():
            assert order == sorted(order, reverse=True), order

    @invariant()
    def concurrency_limits(self):
        assert len(self.running) <= self.policy.max_concurrency
        per_tool: dict[str, int] = {}
        for cid in self.running:
            tool = self.orch.calls[cid].call.tool
            per_tool[tool] = per_tool.get(tool, 0) + 1
        for tool, n in per_tool.items():
            limit = self.catalog.by_name[tool].max_concurrency
            assert limit is None or n <= limit, (tool, n, limit)

    def teardown(self):
        """I9: answering everything (successfully) always ends the run, every call final."""
        if not hasattr(self, "orch"):
            return
        for _ in range(10_000):
            if self.orch.done:
                break
            if not self.outstanding:
                self.now += 11
                self._take(self.orch.tick(self.now))
                if not self.outstanding and not self.orch.done:
                    stuck = {cid: (r.state.value, r.pending_deps, r.pending_order, r.pending_escalations,
                                   r.claim_pending, r.answer)
                             for cid, r in self.orch.calls.items() if r.state not in FINAL}
                    trail = [(t.call_id, t.src, t.trigger, t.dst) for t in self.orch.transitions
                             if t.call_id in stuck]
                    raise AssertionError(f"stuck: nothing outstanding but the run is not done: {stuck}"
                                         f" edges={self.orch.intake_result.order_edges} trail={trail}"
                                         f" events={self.orch.events[-8:]} history={self.history}"
                                         f" ready={self.orch._ready} blocked={self.orch._blocked_by_tool}"
                                         f" running={self.orch._running} by_tool={self.orch._running_by_tool}"
                                         f" limit={self.policy.max_concurrency}")
                continue
            cmd = self.outstanding.pop(0)
            self.now += 1
            if isinstance(cmd, Execute):
                self.running.discard(cmd.call_id)
                self._take(self.orch.execution_finished(cmd.call_id, ExecutionResult(ok=True), self.now))
            elif isinstance(cmd, Rollback):
                self._take(self.orch.rollback_finished(cmd.call_id, ExecutionResult(ok=True), self.now))
            elif isinstance(cmd, RequestApproval):
                if cmd.kind == "live":
                    self.grants.add(cmd.call_ids[0])
                self._take(self.orch.approval_answered(cmd.request_id, True, "tester", self.now))
        assert self.orch.done
        assert all(r.state in FINAL for r in self.orch.calls.values())
        assert self.finished, "RunFinished was not emitted"
        # I10/I12 and the basis of `resume`: replaying the logged events through a
        # fresh orchestrator reproduces every transition exactly.
        again = Orchestrator(self.catalog, self.policy, run_id="r", ledger=self.pre)
        again.replay_events(self.planset, self.orch.events)
        assert again.transitions == self.orch.transitions
        assert again.outstanding(self.now) == []


TestOrchestrator = OrchestratorMachine.TestCase
