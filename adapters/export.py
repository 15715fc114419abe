"""Writing the seven outputs of a stored run (``interlock export``, ``resolve``).

The store is the source of truth; the files are exports of it. The run is
rebuilt from its events (which also proves the stored log is the one its
events produce) and written with the same code as a live run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from interlock.adapters.outputs import OUTPUTS, write_outputs
from interlock.adapters.recovery import rebuild
from interlock.core.summary import build_health, build_summary


def export_run(store: Any, run_id: str, out: Path, *, replace: bool = False) -> dict[str, Path]:
    from interlock.adapters.finish import signals_for

    rebuilt = rebuild(store, run_id)
    orch = rebuilt.orchestrator
    if replace:
        for name in OUTPUTS.names():
            (out / name).unlink(missing_ok=True)
    finished = orch.transitions[-1].time if orch.transitions else rebuilt.meta.get("started", 0.0)
    summary = build_summary(orch, started_at=rebuilt.meta.get("started", 0.0), finished_at=finished,
                            inputs=rebuilt.meta.get("inputs", {}), plans=rebuilt.plans)
    health = build_health(orch, time=finished)
    signals = signals_for(orch, time=finished)
    return write_outputs(out, run_id=run_id, summary=summary, health=health,
                         transitions=orch.transitions, executions=orch.executions,
                         conflicts=orch.conflicts, rollbacks=orch.rollbacks, signals=signals)
