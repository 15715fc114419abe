"""Composition root: the one place where real (or fake) adapters are wired.

``Runtime`` is also the Python API for embedding interlock in a service::

    from interlock.adapters import Runtime

    rt = Runtime.from_files("catalog.yaml", policy="policy.yaml", approvals="rules.yaml",
                            tools=["my_tools"], state_dir=".interlock")
    result = rt.run("plans.yaml", out="runs/r1")
    print(result.exit_code, result.summary["counts"])
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import attrs

from interlock.adapters.approvals import CallableGate, DenyAll, RulesGate, TerminalPrompt, guarded
from interlock.adapters.clocks import FakeClock, SystemClock
from interlock.adapters.executors import Executor
from interlock.adapters.loading import Inputs, load_inputs, read_document
from interlock.adapters.recovery import run_meta
from interlock.adapters.registry import ToolRegistry, default_registry
from interlock.adapters.runner import Runner, RunResult
from interlock.core.commands import Alert
from interlock.core.convert import structure_catalog, structure_plans, structure_policy
from interlock.core.model import Catalog, PlanSet, Policy
from interlock.core.ports import ApprovalGate, Clock


def make_run_id(clock: Clock, *, seed: int | None, digests: dict[str, str]) -> str:
    """Unique per run; derived from the seed and the inputs in deterministic mode (I12)."""
    if seed is not None:
        h = hashlib.sha256(f"{seed}|{sorted(digests.items())}".encode()).hexdigest()[:12]
        return f"run-{seed}-{h}"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock.now()))
    return f"run-{stamp}-{secrets.token_hex(3)}"


def make_gate(approvals: str | os.PathLike | Callable | ApprovalGate | None, *, interactive: bool,
              clock: Clock) -> ApprovalGate:
    """Deny-all unless told otherwise (fail closed); always wrapped by ``guarded``."""
    if approvals is None:
        gate: Any = TerminalPrompt() if interactive else DenyAll()
    elif isinstance(approvals, (str, os.PathLike)):
        gate = RulesGate.from_file(approvals, clock)
    elif hasattr(approvals, "request"):
        gate = approvals
    elif callable(approvals):
        gate = CallableGate(approvals)
    else:
        raise TypeError(f"approvals must be a rules file, a callable or a gate, not {type(approvals).__name__}")
    return guarded(gate, clock)


@attrs.define
class Runtime:
    """Everything a run needs except the plans. Build with ``from_files`` or directly."""

    catalog: Catalog
    policy: Policy = attrs.Factory(Policy)
    registry: ToolRegistry = attrs.Factory(lambda: default_registry)
    approvals: Any = None  # rules file path, callable, gate, or None (deny all)
    interactive: bool = False
    clock: Clock = attrs.Factory(SystemClock)
    state_dir: str | os.PathLike | None = ".interlock"
    seed: int | None = None
    sinks: tuple[Callable[[Alert], None], ...] = ()
    progress: Callable | None = None
    observers: tuple = ()
    tools: tuple[str, ...] = ()  # --tools specs, kept so `resume` loads the same implementations
    inputs: dict[str, Any] = attrs.Factory(dict)  # paths and digests, for the summary

    @classmethod
    def from_files(
        cls,
        catalog: str | os.PathLike,
        *,
        policy: str | os.PathLike | None = None,
        approvals: Any = None,
        tools: Iterable[str] = (),
        entry_points: bool = True,
        live: bool = False,
        fake_clock: bool = False,
        seed: int | None = None,
        state_dir: str | os.PathLike | None = ".interlock",
        registry: ToolRegistry | None = None,
        **kw: Any,
    ) -> Runtime:
        """Load and validate the catalog and policy (LoadError lists every problem)."""
        from interlock.core.errors import LoadError

        problems = []
        try:
            cat = structure_catalog(read_document(catalog), str(catalog))
        except LoadError as exc:
            problems.extend(exc.problems)
            cat = None
        pol = Policy()
        if policy is not None:
            try:
                pol = structure_policy(read_document(policy), str(policy), cat)
            except LoadError as exc:
                problems.extend(exc.problems)
        if problems:
            raise LoadError(problems)
        assert cat is not None
        inputs = {"catalog": _file_input(catalog),
                  "policy": _file_input(policy) if policy else {"path": None, "sha256": None}}
        return cls._build(cat, pol, inputs, approvals=approvals, tools=tools, entry_points=entry_points,
                          live=live, fake_clock=fake_clock, seed=seed, state_dir=state_dir,
                          registry=registry, **kw)

    @classmethod
    def from_inputs(cls, inputs: Inputs, **kw: Any) -> Runtime:
        """From files already loaded and checked by ``load_inputs`` (what ``interlock run``
        does: every problem of every file is reported before anything is built)."""
        digests = {k: {"path": inputs.paths[k], "sha256": inputs.digests[k]} for k in inputs.digests}
        digests.setdefault("policy", {"path": None, "sha256": None})
        return cls._build(inputs.catalog, inputs.policy, digests, **kw)

    @classmethod
    def _build(cls, cat: Catalog, pol: Policy, inputs: dict[str, Any], *, approvals: Any = None,
               tools: Iterable[str] = (), entry_points: bool = True, live: bool = False,
               fake_clock: bool = False, seed: int | None = None,
               state_dir: str | os.PathLike | None = ".interlock", registry: ToolRegistry | None = None,
               **kw: Any) -> Runtime:
        if live:
            pol = attrs.evolve(pol, allow_live=True)
        reg = registry or default_registry
        if entry_points:
            reg.load_entry_points()
        for spec in tools:
            reg.load_module(spec)
        clock: Clock = FakeClock() if fake_clock else SystemClock()
        return cls(catalog=cat, policy=pol, registry=reg, approvals=approvals, clock=clock,
                   state_dir=state_dir, seed=seed, inputs=inputs, tools=tuple(tools), **kw)

    @classmethod
    def from_catalog(
        cls,
        catalog: Catalog,
        *,
        policy: Policy | None = None,
        tools: Iterable[str] = (),
        entry_points: bool = True,
        registry: ToolRegistry | None = None,
        **kw: Any,
    ) -> Runtime:
        """A runtime from objects already loaded (the embedding path)."""
        reg = registry or default_registry
        if entry_points:
            reg.load_entry_points()
        for spec in tools:
            reg.load_module(spec)
        return cls(catalog=catalog, policy=policy or Policy(), registry=reg, tools=tuple(tools), **kw)

    def load_plans(self, plans: str | os.PathLike | dict | PlanSet) -> PlanSet:
        if isinstance(plans, PlanSet):
            return plans
        if isinstance(plans, dict):
            return structure_plans(plans, "<plans>", self.catalog)
        self.inputs["plans"] = _file_input(plans)
        return structure_plans(read_document(plans), str(plans), self.catalog)

    def run(self, plans: str | os.PathLike | dict | PlanSet, *, out: str | os.PathLike | None = None,
            run_id: str | None = None) -> RunResult:
        """Run plans to the end (blocking) and, with ``out``, write the seven outputs."""
        return asyncio.run(self.arun(plans, out=out, run_id=run_id))

    async def arun(self, plans: str | os.PathLike | dict | PlanSet, *,
                   out: str | os.PathLike | None = None, run_id: str | None = None) -> RunResult:
        from interlock.adapters.finish import finish_run, open_store, prepare_out_dir

        planset = self.load_plans(plans)
        if out is not None:
            prepare_out_dir(out)  # nothing runs when the outputs cannot be kept
        digests = {k: v["sha256"] for k, v in self.inputs.items() if v and v.get("sha256")}
        run_id = run_id or make_run_id(self.clock, seed=self.seed, digests=digests)
        store = open_store(self.state_dir) if self.state_dir is not None else None
        try:
            policy, changes = tuned_policy(self.policy, store)
            gate = make_gate(self.approvals, interactive=self.interactive, clock=self.clock)
            runner = Runner(
                catalog=self.catalog, policy=policy, policy_changes=changes,
                executor=Executor(self.registry, self.catalog), gate=gate, clock=self.clock,
                run_id=run_id, store=store, sinks=self.sinks, progress=self.progress,
                observers=tuple(self.observers),
            )
            started = self.clock.now()
            start = runner.starting_state()
            if store is not None:
                meta = run_meta(
                    catalog=self.catalog, plans=planset, policy=policy, ledger=start[0],
                    locked=start[1], lock_reason=start[2], policy_changes=changes,
                    inputs=self.inputs, tools=list(self.tools), approvals=self.approvals,
                    out=str(out) if out is not None else None, started=started,
                )
                store.create_run(run_id, digests=digests, meta=meta)
            result = await runner.run(planset, start)
            return finish_run(runner, result, planset=planset, inputs=self.inputs, started=started,
                              out=out, store=store)
        finally:
            if store is not None:
                store.close()


def tuned_policy(policy: Policy, store: Any) -> tuple[Policy, list[dict[str, Any]]]:
    """With ``learning.auto_tune``, apply threshold recommendations learned from the
    real outcomes of earlier runs in the store (never below the floor: I14)."""
    if not policy.learning.auto_tune or store is None:
        return policy, []
    from interlock.core.learning import apply_recommendations, recommend, samples_from_executions

    past = [e for run in store.list_runs() for e in store.records(run["run_id"], "execution")]
    recs = recommend(samples_from_executions(past), policy)
    return apply_recommendations(policy, recs)


def _file_input(path: str | os.PathLike) -> dict[str, str]:
    data = Path(path).read_bytes()
    return {"path": str(path), "sha256": hashlib.sha256(data).hexdigest()}


__all__ = ["Runtime", "make_gate", "make_run_id", "load_inputs"]
