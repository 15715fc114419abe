"""The end of a run: summary, health, learning signals, the seven outputs, the store.

Kept apart from the runner so that ``interlock run`` and ``interlock resume``
finish a run the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from interlock.adapters.outputs import prepare_out_dir, write_outputs
from interlock.core.convert import unstructure
from interlock.core.feedback import build_signals
from interlock.core.summary import build_health, build_summary, call_rows


def open_store(state_dir: str | os.PathLike) -> Any:
    from interlock.adapters.store import SQLiteStore

    return SQLiteStore.open(state_dir)


def signals_for(orch: Any, *, time: float, validations: list[dict] = ()) -> list[dict[str, Any]]:
    return build_signals(  # it takes records as they are: no conversion per record
        executions=orch.executions,
        rollbacks=orch.rollbacks,
        conflicts=orch.conflicts,
        calls=[{**row, "phase22_validation_id": orch.calls[row["call_id"]].call.phase22_validation_id}
               for row in call_rows(orch)],
        policy=orch.policy,
        validations=list(validations),
        time=time,
    )


def finish_run(runner: Any, result: Any, *, planset: Any, inputs: dict[str, Any], started: float,
               out: str | os.PathLike | None, store: Any) -> Any:
    """Build the documents, write the outputs (when ``out``), close the run in the store."""
    orch = result.orchestrator
    # A run is finished when its last transition happened: the same value an export
    # of the stored run computes, so exports match the original outputs.
    finished = orch.transitions[-1].time if orch.transitions else runner.clock.now()
    summary = build_summary(orch, started_at=started, finished_at=finished, inputs=inputs, plans=planset)
    health = build_health(orch, time=finished)
    signals = signals_for(orch, time=finished)
    summary["audit"] = {"transitions": len(runner.lines),
                        "head_hash": runner.prev_hash}
    if out is not None:
        write_outputs(
            out, run_id=orch.run_id, summary=summary, health=health,
            transitions=orch.transitions, executions=orch.executions,
            conflicts=orch.conflicts, rollbacks=orch.rollbacks, signals=signals,
            chained=runner.lines,  # already chained (and committed) as the run went
        )
        result.out_dir = str(Path(out))
    if store is not None:
        records = [("conflict", unstructure(c)) for c in orch.conflicts]
        records += [("signal", s) for s in signals]
        store.commit_step(orch.run_id, records=records)
        store.finish_run(orch.run_id, status="interrupted" if result.interrupted else "finished",
                         exit_code=result.exit_code)
    result.summary = summary
    return result


__all__ = ["finish_run", "open_store", "prepare_out_dir", "signals_for"]
