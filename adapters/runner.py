"""The runner: drives the sans-I/O orchestrator with real executors, gates and a store.

One loop: carry out commands, wait for the first answer, feed it back as an
event, group-commit what that step produced, repeat until ``RunFinished``.
Durability rule: every transition of a step is committed before the commands
of that step are carried out, and an irreversible intent is claimed durably
(``ClaimIntent``) before its ``Execute(LIVE)`` exists at all.

Deterministic mode (a ``FakeClock``): answers are fed back in the order the
commands were issued, and the clock advances by a fixed step per event, so
the same inputs give byte-identical outputs (I12).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from typing import Any, Callable

import attrs

from interlock.adapters.clocks import FakeClock
from interlock.core.audit import GENESIS, link_hash
from interlock.core.commands import (
    Alert,
    Cancelled,
    ClaimIntent,
    Execute,
    ReleaseIntent,
    RequestApproval,
    Rollback,
    RunFinished,
    SystemLocked,
    SystemUnlocked,
)
from interlock.core.convert import unstructure
from interlock.core.model import Catalog, PlanSet, Policy
from interlock.core.orchestrator import Orchestrator
from interlock.core.ports import ApprovalAnswer, ApprovalGate, Clock, ExecutionResult, ToolExecutor
from interlock.core.audit import transition_line


@attrs.define
class RunResult:
    run_id: str
    exit_code: int
    orchestrator: Orchestrator
    summary: dict[str, Any] | None = None
    out_dir: str | None = None
    interrupted: bool = False


class RunObserver:
    """Watches a run from the outside (OpenTelemetry, Prometheus, ...). Override what you need.

    Observers must not raise; if one does, the run goes on and the error is ignored:
    observability never changes what runs.
    """

    def execution_started(self, cmd: Execute, call: Any, time: float) -> None:
        """A call attempt was handed to an executor."""

    def execution_finished(self, cmd: Execute, call: Any, record: Any) -> None:
        """An attempt ended; ``record`` is its ExecutionRecord (mode, outcome, duration, decision)."""

    def state_changed(self, orchestrator: Any) -> None:
        """A step was committed: health, lock state and anomalies may have changed."""

    def run_finished(self, orchestrator: Any) -> None:
        """Every call is final."""


class _Ledger:
    """In-memory intent ledger, used when no durable store is configured."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str], str] = {}

    def claim(self, tool: str, key: str, call_id: str, run_id: str) -> str | None:
        holder = self._keys.setdefault((tool, key), call_id)
        return None if holder == call_id else holder

    def release(self, tool: str, key: str, call_id: str, run_id: str | None = None) -> None:
        if self._keys.get((tool, key)) == call_id:
            del self._keys[(tool, key)]

    def started_keys(self) -> dict[tuple[str, str], str]:
        return dict(self._keys)


class Runner:
    """Carries out one run. Create one per run."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        policy: Policy,
        executor: ToolExecutor,
        gate: ApprovalGate,
        clock: Clock,
        run_id: str,
        store: Any = None,
        sinks: tuple[Callable[[Alert], None], ...] = (),
        progress: Callable[[Orchestrator, Any], None] | None = None,
        observers: tuple[RunObserver, ...] = (),
        policy_changes: list[dict[str, Any]] | None = None,
        tick_step: float = 0.001,
    ) -> None:
        self.catalog = catalog
        self.policy = policy
        self.executor = executor
        self.gate = gate
        self.clock = clock
        self.run_id = run_id
        self.store = store
        self.ledger = store if store is not None else _Ledger()
        self.sinks = sinks
        self.progress = progress
        self.observers = observers
        self.policy_changes = list(policy_changes or [])
        self.deterministic = isinstance(clock, FakeClock)
        self.tick_step = tick_step
        self.prev_hash = GENESIS
        self.lines: list[dict[str, Any]] = []
        self._persisted_transitions = 0
        self._persisted = {"execution": 0, "rollback": 0, "anomaly": 0, "event": 0}
        self._interrupted = False
        self._last_poll = 0.0
        self._lock_seen: dict[str, Any] | None = None  # the store's lock as last seen or written
        self._wake: asyncio.Event | None = None
        self.orch: Orchestrator | None = None

    # ------------------------------------------------------------------ time

    def now(self) -> float:
        if self.deterministic:
            self.clock.advance(self.tick_step)  # type: ignore[attr-defined]
        return self.clock.now()

    # ----------------------------------------------------------- persistence

    def _persist(self) -> None:
        """Chain and group-commit everything the last step produced (one transaction)."""
        orch = self.orch
        assert orch is not None
        new = orch.transitions[self._persisted_transitions:]
        lines = []
        for rec in new:
            line = transition_line(rec, self.run_id)
            line["prev_hash"] = self.prev_hash
            line["hash"] = link_hash(self.prev_hash, line)
            self.prev_hash = line["hash"]
            lines.append(line)
        self._persisted_transitions = len(orch.transitions)
        self.lines.extend(lines)
        records: list[tuple[str, dict]] = []
        start = self._persisted["event"]
        records.extend(("event", ev) for ev in orch.events[start:])  # plain dicts already
        self._persisted["event"] = len(orch.events)
        for kind, items in (("execution", orch.executions), ("rollback", orch.rollbacks),
                            ("anomaly", orch.anomalies)):
            start = self._persisted[kind]
            records.extend((kind, unstructure(x)) for x in items[start:])
            self._persisted[kind] = len(items)
        if self.store is not None and (lines or records):
            self.store.commit_step(self.run_id, transitions=lines, records=records)
        if self.observers and (lines or records):
            self._notify("state_changed", orch)

    # ------------------------------------------------------------------ loop

    def starting_state(self) -> tuple[dict, bool, str]:
        """The ledger snapshot and lock state a new run starts from (kept for resume)."""
        ledger_keys = self.ledger.started_keys()
        locked, reason = False, ""
        if self.store is not None:
            st = self.store.system_state()
            locked, reason = st.get("state") == "locked", st.get("reason") or ""
        return ledger_keys, locked, reason

    async def run(self, plans: PlanSet, start: tuple[dict, bool, str] | None = None) -> RunResult:
        ledger_keys, locked, reason = start or self.starting_state()
        if self.store is not None:
            self._lock_seen = self.store.system_state()
        orch = Orchestrator(self.catalog, self.policy, run_id=self.run_id, ledger=ledger_keys,
                            locked=locked, lock_reason=reason, policy_changes=self.policy_changes)
        self.orch = orch
        return await self._drive(lambda: orch.submit(plans, self.now()))

    def attach(self, rebuilt: Any) -> Orchestrator:
        """Take over a stored run rebuilt by ``interlock.adapters.recovery.rebuild``:
        what it already persisted is not written again; the chain continues from its head."""
        orch = rebuilt.orchestrator
        self.orch = orch
        self.lines = list(rebuilt.lines)
        self.prev_hash = self.lines[-1]["hash"] if self.lines else GENESIS
        self._persisted_transitions = len(rebuilt.lines)
        self._persisted = {"execution": len(orch.executions), "rollback": len(orch.rollbacks),
                           "anomaly": len(orch.anomalies), "event": rebuilt.events}
        return orch

    def persist(self) -> None:
        """Group-commit what the orchestrator produced since the last commit."""
        self._persist()

    async def resume(self, rebuilt: Any) -> RunResult:
        """Continue a stored run rebuilt by ``interlock.adapters.recovery.rebuild``."""
        orch = self.attach(rebuilt)
        # The lock may have changed while interlock was down: apply the store's state
        # first, so outstanding() re-runs nothing the lock now forbids (I2).
        self._lock_seen = None
        return await self._drive(lambda: self._poll_lock(force=True) + orch.outstanding(self.now()))

    async def _drive(self, first: Callable[[], list[Any]]) -> RunResult:
        """Run the loop from the commands ``first`` returns until every call is final."""
        orch = self.orch
        assert orch is not None
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        installed = self._install_sigint(loop)
        try:
            cmds = first()
            self._persist()
            await self._loop(cmds)
            self._notify("run_finished", orch)
        finally:
            if installed:
                loop.remove_signal_handler(signal.SIGINT)
        return RunResult(self.run_id, orch.exit_code(), orch, interrupted=self._interrupted)

    def _install_sigint(self, loop: asyncio.AbstractEventLoop) -> bool:
        if sys.platform == "win32":  # pragma: no cover
            return False
        try:
            loop.add_signal_handler(signal.SIGINT, self.interrupt)
            return True
        except (RuntimeError, ValueError):  # not the main thread
            return False

    def interrupt(self) -> None:
        """Ctrl-C: no new call starts; in-flight ones are awaited (or marked lost)."""
        self._interrupted = True
        if self._wake is not None:
            self._wake.set()  # the loop may be waiting on a long call: wake it now

    async def _loop(self, cmds: list[Any]) -> None:
        orch = self.orch
        assert orch is not None
        pending: dict[asyncio.Task, tuple[int, Any]] = {}
        issued = 0
        queue = list(cmds)
        aborted = False
        while True:
            queue.extend(self._poll_lock())
            while queue:
                cmd = queue.pop(0)
                if self._reaches_out(cmd):
                    # Durability rule: what led here is on disk before the world sees it.
                    self._persist()
                follow = self._carry_out(cmd, pending, issued)
                issued += 1
                queue.extend(follow)
            self._persist()  # before waiting: everything decided so far is durable
            if self._interrupted and not aborted:
                aborted = True
                queue.extend(orch.abort("interrupted by the operator (Ctrl-C)", self.now()))
                self._persist()
                continue
            if orch.done:
                break
            if not pending:
                # Nothing in flight and not done: only approvals past their deadline can move.
                follow = orch.tick(self.now() + self.policy.approval.timeout_s)
                self._persist()
                if not follow and not orch.done:
                    raise RuntimeError("the run cannot make progress (orchestrator has nothing to wait for)")
                queue.extend(follow)
                continue
            if self.deterministic:
                # Feed answers in issue order: deterministic regardless of thread timing.
                task = min(pending, key=lambda t: pending[t][0])
                await asyncio.wait({task})
                done = [task]
            else:
                wake = asyncio.ensure_future(self._wake.wait()) if not self._interrupted else None
                done_set, _ = await asyncio.wait(
                    set(pending) | ({wake} if wake else set()), return_when=asyncio.FIRST_COMPLETED,
                    timeout=0.5 if self._interrupted else None,
                )
                if wake is not None:
                    done_set.discard(wake)
                    wake.cancel()
                done = sorted(done_set, key=lambda t: pending[t][0])
                if not done and self._interrupted:
                    if not aborted:
                        continue  # abort first (top of the loop), then give in-flight calls their grace
                    done = await self._give_up(pending)
            for task in done:
                _, cmd = pending.pop(task)
                queue.extend(self._answer(cmd, task))
            # Group commit: what these answers changed is committed in one transaction,
            # at the latest before any command they produced reaches the world.

    def _poll_lock(self, force: bool = False) -> list[Any]:
        """Follow the durable lock: an operator's `interlock lock` (or unlock) in another
        process takes effect in this run at its next decision (I2 across processes).

        Only a *change* of the store's lock counts: the run's own lock (the monitor's
        unsafe_escalation) is written there too, and must not read as an unlock."""
        orch = self.orch
        if self.store is None or orch is None:
            return []
        t = time.monotonic()
        if not force and t - self._last_poll < 0.2:
            return []
        self._last_poll = t
        st = self.store.system_state()
        if st == self._lock_seen:
            return []
        self._lock_seen = st
        if st.get("state") == "locked" and not orch.locked:
            cmds = orch.lock(st.get("reason") or "locked by an operator", st.get("by") or "operator", self.now())
        elif st.get("state") == "unlocked" and orch.locked:
            cmds = orch.unlock(st.get("reason") or "unlocked by an operator", st.get("by") or "operator", self.now())
        else:
            return []
        self._persist()
        # The store already holds this state: don't write it back.
        return [c for c in cmds if not isinstance(c, (SystemLocked, SystemUnlocked))]

    async def _give_up(self, pending: dict) -> list[asyncio.Task]:
        """After Ctrl-C, in-flight calls get a grace period, then count as lost."""
        done_set, _ = await asyncio.wait(set(pending), timeout=5.0)
        for task in set(pending) - done_set:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return sorted(pending, key=lambda t: pending[t][0])

    def _reaches_out(self, cmd: Any) -> bool:
        """Does carrying out ``cmd`` have an effect outside this process? (MOCK and
        contract previews do not; they may run before their step is committed.)"""
        if isinstance(cmd, Execute):
            return self._quick(cmd) is None
        return not isinstance(cmd, (Cancelled, RunFinished, Alert))

    def _quick(self, cmd: Execute) -> Any:
        now_fn = getattr(self.executor, "execute_now", None)
        return now_fn(cmd, self.catalog.by_name[cmd.tool]) if now_fn is not None else None

    def _carry_out(self, cmd: Any, pending: dict, issued: int) -> list[Any]:
        orch = self.orch
        assert orch is not None
        if isinstance(cmd, Execute):
            contract = self.catalog.by_name[cmd.tool]
            quick = self._quick(cmd)
            if quick is not None:  # no user code runs: answer at once, no task
                call = orch.calls[cmd.call_id].call
                self._notify("execution_started", cmd, call, self.clock.now())
                if self.progress is not None:
                    self.progress(orch, (cmd, quick))
                follow = orch.execution_finished(cmd.call_id, quick, self.now())
                self._notify("execution_finished", cmd, call, orch.executions[-1])
                return follow
            task = asyncio.ensure_future(self.executor.execute(cmd, contract))
            pending[task] = (issued, cmd)
            self._notify("execution_started", cmd, orch.calls[cmd.call_id].call, self.clock.now())
        elif isinstance(cmd, Rollback):
            contract = self.catalog.by_name[cmd.tool]
            task = asyncio.ensure_future(self.executor.rollback(cmd, contract))
            pending[task] = (issued, cmd)
        elif isinstance(cmd, RequestApproval):
            task = asyncio.ensure_future(self.gate.request(cmd))
            pending[task] = (issued, cmd)
        elif isinstance(cmd, ClaimIntent):
            holder = self.ledger.claim(cmd.tool, cmd.key, cmd.call_id, self.run_id)
            return orch.intent_answered(cmd.call_id, holder, self.now())
        elif isinstance(cmd, ReleaseIntent):
            rec = orch.calls[cmd.call_id]
            self.ledger.release(rec.call.tool, cmd.key, cmd.call_id, self.run_id)
        elif isinstance(cmd, Alert):
            for sink in self.sinks:
                try:
                    sink(cmd)
                except Exception:  # a broken sink must not stop the run
                    pass
        elif isinstance(cmd, (SystemLocked, SystemUnlocked)):
            if self.store is not None:
                state = "locked" if isinstance(cmd, SystemLocked) else "unlocked"
                self.store.set_system_state(state, cmd.reason, cmd.by, self.clock.now())
                self._lock_seen = self.store.system_state()  # our own change, not an operator's
        if self.progress is not None and isinstance(cmd, (Execute, Cancelled, RunFinished)):
            self.progress(orch, cmd)
        return []

    def _notify(self, event: str, *args: Any) -> None:
        for obs in self.observers:
            try:
                getattr(obs, event)(*args)
            except Exception:  # observability never changes what runs
                pass

    def _answer(self, cmd: Any, task: asyncio.Task) -> list[Any]:
        orch = self.orch
        assert orch is not None
        now = self.now()
        if task.cancelled():
            result: Any = ExecutionResult(ok=False, lost=True, error="interrupted: outcome unknown")
        elif task.exception() is not None:
            exc = task.exception()
            result = ExecutionResult(ok=False, lost=isinstance(cmd, Execute),
                                     error=f"executor failed: {type(exc).__name__}: {exc}")
        else:
            result = task.result()
        if isinstance(cmd, Execute):
            if self.progress is not None:
                self.progress(orch, (cmd, result))
            follow = orch.execution_finished(cmd.call_id, result, now)
            self._notify("execution_finished", cmd, orch.calls[cmd.call_id].call, orch.executions[-1])
            return follow
        if isinstance(cmd, Rollback):
            return orch.rollback_finished(cmd.call_id, result, now)
        # An approval: anything but a clean ApprovalAnswer(granted=True) is a denial (I11).
        if isinstance(result, ApprovalAnswer):
            granted, by, reason = result.granted is True, result.by, result.reason
        else:
            granted, by, reason = False, "gate", (result.error if isinstance(result, ExecutionResult)
                                                  else "approval gate gave no answer")
        return orch.approval_answered(cmd.request_id, granted, by, now, reason=reason)
