"""How many transition lines per second the store makes durable.

Three writers, measured in one run on the same disk with the same lines
(realistic, hash-chained, prepared before the clock starts):

- group commit: ``SQLiteStore.commit_step`` with a batch of lines per step
  (one transaction, one WAL fsync per batch) -- what the runner does;
- per event: one ``commit_step`` (one transaction, one fsync) per line;
- a plain JSONL writer: append the batch, flush, ``os.fsync`` -- the floor
  any durable log pays, without SQLite.

Prints events/s for each and the ratios: group / per-event (target >= 10x),
group / JSONL, and the absolute group rate against its target
(>= 100,000 events/s), plus the CPU the group writer spends per event (its
ceiling when the disk is fast, and a figure a busy disk does not distort). Each writer runs ``--repeat`` times interleaved; the
median is reported. ``--check`` exits 1 if the group / per-event target is
missed (the absolute rate depends on the disk and the CPU, so it is reported,
not enforced).

    .venv/bin/python bench/bench_store.py [--events 100000] [--batch 100] [--dir PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from interlock.adapters.store import FIRST_SEQ, SQLiteStore
from interlock.core.audit import chain_lines, verify_chain

TARGET_RATIO = 10.0
TARGET_RATE = 100_000.0


def make_lines(run_id: str, n: int) -> list[dict]:
    """n chained lines shaped like execution_state_transitions.jsonl."""
    return chain_lines([{
        "schema_version": 1, "run_id": run_id, "seq": FIRST_SEQ + i, "time": 1_700_000_000.0 + i * 0.001,
        "machine": "call", "call_id": f"plan-{i // 40}/call-{i % 40}", "plan_id": f"plan-{i // 40}",
        "agent_id": f"agent-{i % 7}", "from": "ready", "trigger": "dispatch", "to": "running_live",
        "rule": "I1: live permitted (risk=medium, confidence 0.93 >= 0.85)",
        "detail": {"mode": "LIVE", "attempt": 1, "risk": "medium", "confidence": 0.93},
    } for i in range(n)])


def bench_group(store: SQLiteStore, run_id: str, lines: list[dict], batch: int) -> tuple[float, float]:
    """(events/s by the wall clock, CPU microseconds per event in this process)."""
    store.create_run(run_id, digests={}, meta={})
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(lines), batch):
        store.commit_step(run_id, transitions=lines[i:i + batch])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return len(lines) / wall, cpu / len(lines) * 1e6


def bench_jsonl(path: Path, lines: list[dict], batch: int) -> float:
    encode = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
    t0 = time.perf_counter()
    with open(path, "a", encoding="utf-8") as f:
        for i in range(0, len(lines), batch):
            f.write("".join(encode(line) + "\n" for line in lines[i:i + batch]))
            f.flush()
            os.fsync(f.fileno())
    return len(lines) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000, help="lines per group-commit and JSONL run")
    ap.add_argument("--batch", type=int, default=100, help="lines per commit_step / per fsync")
    ap.add_argument("--per-event", type=int, default=2_000, help="lines for the one-commit-per-event run")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each writer (median reported)")
    ap.add_argument("--dir", default=None, help="where to write (default: a temp dir; use the disk you care about)")
    ap.add_argument("--check", action="store_true", help="exit 1 if group/per-event is below the target")
    args = ap.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="interlock-bench-", dir=args.dir))
    try:
        group_lines = make_lines("group", args.events)
        single_lines = make_lines("single", args.per_event)
        rates: dict[str, list[float]] = {"group": [], "single": [], "jsonl": []}
        cpu: dict[str, list[float]] = {"group": []}
        for r in range(args.repeat):
            with SQLiteStore.open(base / f"group{r}") as s:
                rate, cpu_us = bench_group(s, "group", group_lines, args.batch)
                rates["group"].append(rate)
                cpu["group"].append(cpu_us)
                assert verify_chain(s.transition_texts("group"), s.head("group")).ok
            with SQLiteStore.open(base / f"single{r}") as s:
                rates["single"].append(bench_group(s, "single", single_lines, 1)[0])
                assert s.head("single")[0] == len(single_lines)
            rates["jsonl"].append(bench_jsonl(base / f"log{r}.jsonl", group_lines, args.batch))
        med = {k: statistics.median(v) for k, v in rates.items()}
        cpu_us = statistics.median(cpu["group"])
    finally:
        shutil.rmtree(base, ignore_errors=True)

    ratio = med["group"] / med["single"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"interlock store: SQLite {sqlite3.sqlite_version}, WAL, synchronous=FULL; "
          f"{args.events} lines in batches of {args.batch}; median of {args.repeat}; "
          f"{os.cpu_count()} CPUs, load {load:.1f}; under {args.dir or tempfile.gettempdir()}")
    print(f"  group commit ({args.batch}/step)       {med['group']:>12,.0f} events/s")
    print(f"  one commit per event         {med['single']:>12,.0f} events/s   ({args.per_event} lines)")
    print(f"  JSONL append+fsync/{args.batch:<8}  {med['jsonl']:>12,.0f} events/s   (baseline)")
    print(f"  group / per-event   {ratio:8.1f}x   target >= {TARGET_RATIO:.0f}x: "
          f"{'met' if ratio >= TARGET_RATIO else 'NOT met'}")
    print(f"  group / JSONL       {med['group'] / med['jsonl']:8.2f}x")
    print(f"  group absolute      {med['group']:>8,.0f}/s  target >= {TARGET_RATE:,.0f}/s: "
          f"{'met' if med['group'] >= TARGET_RATE else 'NOT met'}")
    print(f"  group CPU           {cpu_us:8.1f} us/event in this process (encoding + SQLite): "
          f"{1e6 / cpu_us:,.0f} events/s on this CPU when fsync is free")
    return 1 if args.check and ratio < TARGET_RATIO else 0


if __name__ == "__main__":
    sys.exit(main())
