"""`make demo`: the filesystem example end to end, through the real CLI.

Creates a fresh workspace in .demo/, runs `interlock validate`, `interlock run`
(LIVE for low/medium risk, a rules-file approval for one high-risk call, a
deliberate failure whose rollback restores a real file, two agents writing
the same file, a duplicate irreversible delete), then `verify-log`, `replay`
and `report`, and prints what happened and why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
EX = ROOT / "examples"
DEMO = ROOT / ".demo"
WORKSPACE = DEMO / "workspace"
STATE = DEMO / "state"
OUT = DEMO / "run"
INTERLOCK = [str(Path(sys.executable).parent / "interlock")]
console = Console(highlight=False, width=max(140, shutil.get_terminal_size((140, 40)).columns))

SEED_FILES = {
    "VERSION": "1.1.0\n",
    "CHANGELOG.md": "# Changelog\n\n## 1.1.0\n- First release.\n",
    "README.md": "# Demo project\n",
    "config.yaml": "retries: 3\n",
    "cache/build.tmp": "stale build output\n",
}


def sh(*args: str, check_codes: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    shown = " ".join(a.replace(str(ROOT) + "/", "") for a in args)
    console.print(f"\n[bold]$ interlock {shown}[/bold]")
    env = {**os.environ, "INTERLOCK_WORKSPACE": str(WORKSPACE)}
    proc = subprocess.run(INTERLOCK + list(args), env=env, text=True, capture_output=True)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    if proc.returncode not in check_codes:
        console.print(f"[red]unexpected exit code {proc.returncode}[/red]")
        sys.exit(1)
    return proc


def main() -> int:
    shutil.rmtree(DEMO, ignore_errors=True)
    for rel, text in SEED_FILES.items():
        path = WORKSPACE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    inputs = ["--catalog", str(EX / "fs/catalog.yaml"), "--plans", str(EX / "fs/plans.yaml"),
              "--policy", str(EX / "fs/policy.yaml")]
    sh("validate", *inputs)
    # Exit code 1 is expected: one plan fails on purpose and is rolled back.
    sh("run", *inputs, "--approvals", str(EX / "fs/approvals.yaml"),
       "--tools", str(EX / "tools/fs_tools.py"), "--tools", str(EX / "tools/release_tools.py"),
       "--state-dir", str(STATE), "--out", str(OUT), check_codes=(1,))

    summary = json.loads((OUT / "orchestration_summary.json").read_text())
    t = Table(title="Every call: the mode it ran in and the rule that decided")
    for col in ("call", "agent", "tool", "risk", "conf", "mode", "rule", "final state"):
        t.add_column(col)
    for c in summary["calls"]:
        t.add_row(c["call_id"], c["agent_id"], c["tool"], c["risk"], f"{c['confidence']:.2f}",
                  c["mode"] or "-", c["rule"], c["final_state"]
                  + (f" ({c['approved_by']})" if c.get("approved_by") else ""))
    console.print(t)

    conflicts = json.loads((OUT / "tool_conflicts.json").read_text())["conflicts"]
    t = Table(title="Conflicts found before anything ran, and how each was resolved")
    for col in ("id", "type", "resource", "calls", "strategy", "outcome"):
        t.add_column(col)
    for c in conflicts:
        t.add_row(c["id"], c["type"], c["resource"], ", ".join(c["calls"]), c["strategy"], c["outcome"])
    console.print(t)

    rollbacks = [json.loads(line) for line in (OUT / "rollback_events.jsonl").read_text().splitlines()]
    for r in rollbacks:
        console.print(f"rollback: {r['call_id']} via {r['tool'] or '-'} -> {r['outcome']}"
                      f" (saga started by {r['trigger_call']})")
    restored = (WORKSPACE / "config.yaml").read_text()
    console.print(f"config.yaml after the saga: {restored.strip()!r} "
                  f"({'restored' if restored == SEED_FILES['config.yaml'] else 'NOT restored'})")
    console.print(f"cache/build.tmp deleted at most once: "
                  f"{'still there (the delete was denied approval and ran as a dry run)' if (WORKSPACE / 'cache/build.tmp').exists() else 'deleted once'}")

    sh("verify-log", str(OUT))
    sh("replay", str(OUT))
    report = OUT / "report.html"
    has_report = subprocess.run(INTERLOCK + ["report", "--help"], capture_output=True).returncode == 0
    if has_report:
        sh("report", str(OUT), "--out", str(report))
    console.print(f"\n[bold]The seven outputs and the report are in {OUT.relative_to(ROOT)}/[/bold]:")
    for p in sorted(OUT.iterdir()):
        console.print(f"  {p.relative_to(ROOT)}")
    console.print(f"workspace: {WORKSPACE.relative_to(ROOT)}/   durable store: {STATE.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
