"""The seed's quick start, kept working on top of the real runtime.

    from interlock.adapters.compat import Harness, HarnessConfig

    config = HarnessConfig(output_dir="outputs/phase24", catalog="catalog.yaml",
                           dry_run_only=True, confidence_threshold_for_live=0.75)
    harness = Harness(config)
    harness.load_phase21_plans(plans)             # a plans document, a path, or a PlanSet
    result = harness.execute_orchestration_pipeline()
    health = harness.monitor.calculate_health_score()
    signals = harness.feedback_loop.export_signals()

Nothing here decides anything: it maps the seed's settings onto a Policy and
runs the same ``Runtime`` as ``interlock run``. ``dry_run_only=True`` (the
seed's default) is ``allow_live: false``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import attrs

from interlock.adapters.bootstrap import Runtime
from interlock.adapters.loading import read_document
from interlock.adapters.runner import RunResult
from interlock.core.convert import structure_catalog, structure_policy
from interlock.core.errors import InterlockError
from interlock.core.model import Catalog, PlanSet, Policy, Threshold


@attrs.define
class HarnessConfig:
    catalog: Catalog | str | os.PathLike
    output_dir: str | os.PathLike = "outputs/phase24"
    dry_run_only: bool = True
    confidence_threshold_for_live: float | None = None
    policy: Policy | str | os.PathLike | None = None
    approval_gate_callback: Callable[..., Any] | None = None  # (tool, confidence) -> bool, or a gate
    tools: tuple[str, ...] = ()
    state_dir: str | os.PathLike | None = None  # None: in-memory ledger (no durable store)


class _Monitor:
    def __init__(self, harness: Harness) -> None:
        self._h = harness

    def calculate_health_score(self) -> float | None:
        """Health 0-100 of the last run (None before a run, or with no data)."""
        r = self._h.last_result
        return None if r is None else r.orchestrator.monitor.health()

    def metrics(self) -> dict[str, Any]:
        r = self._h.last_result
        return {} if r is None else r.orchestrator.monitor.metrics()


class _FeedbackLoop:
    def __init__(self, harness: Harness) -> None:
        self._h = harness

    def export_signals(self) -> list[dict[str, Any]]:
        """The learning signals of the last run (the lines of learning_signals.jsonl)."""
        from interlock.adapters.finish import signals_for

        r = self._h.last_result
        if r is None:
            return []
        t = r.orchestrator.transitions[-1].time if r.orchestrator.transitions else 0.0
        return signals_for(r.orchestrator, time=t)


class Harness:
    """The seed's ``Phase24Harness`` on interlock's runtime."""

    def __init__(self, config: HarnessConfig) -> None:
        self.config = config
        catalog = config.catalog
        if not isinstance(catalog, Catalog):
            catalog = structure_catalog(read_document(catalog), str(catalog))
        policy = config.policy
        if policy is None:
            policy = Policy()
        elif not isinstance(policy, Policy):
            policy = structure_policy(read_document(policy), str(policy), catalog)
        policy = attrs.evolve(policy, allow_live=not config.dry_run_only)
        t = config.confidence_threshold_for_live
        if t is not None:
            if not 0.0 <= t <= 1.0:
                raise InterlockError(f"confidence_threshold_for_live must be in [0, 1], got {t!r}")
            # One global LIVE threshold: never below what the policy already asks per risk.
            policy = attrs.evolve(policy, thresholds={
                risk: Threshold(dry_run=th.dry_run, live=max(th.live, t))
                for risk, th in policy.thresholds.items()
            })
        self.runtime = Runtime.from_catalog(catalog, policy=policy, tools=config.tools,
                                            approvals=config.approval_gate_callback,
                                            state_dir=config.state_dir)
        self.plans: PlanSet | None = None
        self.last_result: RunResult | None = None
        self.monitor = _Monitor(self)
        self.feedback_loop = _FeedbackLoop(self)
        self._runs = 0

    def load_phase21_plans(self, plans: PlanSet | dict | list | str | os.PathLike) -> PlanSet:
        if isinstance(plans, list):
            plans = {"schema_version": 1, "plans": plans}
        self.plans = self.runtime.load_plans(plans)
        return self.plans

    def execute_orchestration_pipeline(self) -> dict[str, Any]:
        """Run the loaded plans; write the seven outputs under ``output_dir``; return the summary."""
        if self.plans is None:
            raise InterlockError("load_phase21_plans() first")
        self._runs += 1
        out = Path(self.config.output_dir)
        if out.exists() and any(out.iterdir()):
            out = out / f"run-{self._runs}"
        self.last_result = self.runtime.run(self.plans, out=out)
        return self.last_result.summary or {}


# The seed's names.
Phase24Harness = Harness
Phase24ExecutionConfig = HarnessConfig
