"""What a person sees: progress while a run goes, a summary table at the end.

On a terminal a rich progress bar; otherwise plain lines (CI logs, pipes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from interlock.core.commands import Cancelled, Execute, RunFinished
from interlock.core.controller.states import FINAL

_PLAIN_LIMIT = 200  # beyond this many calls, plain output reports every 10%


class Progress:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._bar: Any = None
        self._task: Any = None
        self._last_pct = -1

    def __call__(self, orch: Any, event: Any) -> None:
        total = len(orch.calls)
        final = sum(1 for r in orch.calls.values() if r.state in FINAL)
        if self.tty:
            if self._bar is None:
                from rich.progress import Progress as Bar

                self._bar = Bar(console=Console(file=self.stream), transient=True)
                self._bar.start()
                self._task = self._bar.add_task("calls", total=total)
            self._bar.update(self._task, completed=final, total=total)
            return
        if isinstance(event, tuple):  # (Execute, ExecutionResult)
            cmd, res = event
            outcome = "lost" if res.lost else ("ok" if res.ok else "failed")
            line = f"[{final}/{total}] {cmd.call_id} {cmd.tool} {cmd.mode.label}: {outcome}"
            if res.error and not res.ok:
                line += f" ({res.error})"
        elif isinstance(event, Cancelled):
            line = f"[{final}/{total}] {event.call_id} {event.state}: {event.reason}"
        elif isinstance(event, RunFinished):
            line = f"[{final}/{total}] run finished"
        else:
            return
        if total > _PLAIN_LIMIT and not isinstance(event, RunFinished):
            pct = final * 10 // max(total, 1)
            if pct == self._last_pct:
                return
            self._last_pct = pct
            line = f"[{final}/{total}] {pct * 10}% of calls final"
        print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def print_summary(result: Any, out: Path | None, console: Console | None = None) -> None:
    """The final table: calls by state and mode, conflicts, rollbacks, anomalies, lock, outputs."""
    console = console or Console(highlight=False)
    s = result.summary or {}
    counts = s.get("counts", {})
    t = Table(title=f"interlock run {result.run_id}", show_header=True)
    t.add_column("what")
    t.add_column("count", justify="right")
    for state, n in counts.get("by_state", {}).items():
        t.add_row(f"state {state}", str(n))
    for mode, n in counts.get("by_mode", {}).items():
        t.add_row(f"mode {mode}", str(n))
    t.add_row("conflicts", str(s.get("conflicts", 0)))
    t.add_row("rollbacks", str(s.get("rollbacks", 0)))
    t.add_row("anomalies", str(len(s.get("anomalies", []))))
    health = (s.get("metrics") or {}).get("system_health_score")
    t.add_row("health score", "n/a" if health is None else f"{health:.1f}")
    lock = s.get("lock", {})
    t.add_row("system", lock.get("state", "unlocked") + (f" ({lock['reason']})" if lock.get("reason") else ""))
    console.print(t)
    if out is not None:
        console.print(f"outputs: {out}/ (orchestration_summary.json and six more)")
    console.print(f"exit code: {result.exit_code}")
