"""``interlock report``: one run directory -> one self-contained HTML page.

The page must open anywhere, years later, with no network: CSS is inline,
every chart is an inline ``<svg>`` drawn here with matplotlib's Agg/SVG
backend (or Graphviz ``dot`` for the state diagram when it is installed),
and nothing is fetched. Text in the charts stays text (``svg.fonttype:
none``), so it can be searched and copied, and the same run directory gives
the same bytes (fixed hash salt, no dates in the SVG metadata).

Reading is strict: the seven files are validated against their JSON
Schemas (``interlock.core.output_schemas``) before anything is drawn, so a
truncated or hand-edited run is refused with file, line and field
(``LoadError``, exit 2) instead of producing a half-true picture. A run
with no executions still renders, with "no data" notes in place of charts.
"""

from __future__ import annotations

import io
import json
import math
import re
import shutil
import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable

import attrs

from interlock.core.errors import LoadError, Problem

__all__ = ["RunData", "build_report", "load_run", "state_counts", "write_report"]

#: One palette for the page and the charts (CSS variables carry the same values).
COLORS = {
    "mock": "#94a3b8",
    "dry_run": "#38bdf8",
    "live": "#f97316",
    "not_run": "#e2e8f0",
    "ink": "#1e293b",
    "muted": "#64748b",
    "faint": "#cbd5e1",
    "grid": "#e2e8f0",
    "accent": "#4f46e5",
    "good": "#16a34a",
    "warn": "#d97706",
    "bad": "#dc2626",
    "running_fill": "#fff7e0",
    "running_edge": "#b58900",
}
MODES = ("mock", "dry_run", "live")
RISKS = ("low", "medium", "high")
#: Chart text, in the order a browser tries them (matplotlib lays out with DejaVu Sans).
FONTS = ["DejaVu Sans", "Helvetica", "Arial", "sans-serif"]


# --------------------------------------------------------------------------
# Reading a run directory
# --------------------------------------------------------------------------


@attrs.frozen
class RunData:
    """The seven outputs of one run, parsed and schema-valid."""

    directory: Path
    summary: dict[str, Any]
    executions: list[dict[str, Any]]
    transitions: list[dict[str, Any]]
    conflicts: list[dict[str, Any]]
    rollbacks: list[dict[str, Any]]
    signals: list[dict[str, Any]]
    health: dict[str, Any]


def _read_docs(path: Path, problems: list[Problem]) -> list[tuple[str, Any]]:
    """(where, document) pairs: one for a JSON file, one per line of a JSONL file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(Problem(str(path), "", "missing; a run directory written by interlock run has all seven outputs"))
        return []
    except UnicodeDecodeError as exc:
        problems.append(Problem(str(path), "", f"not UTF-8 text ({exc.reason} at byte {exc.start})"))
        return []
    except OSError as exc:
        problems.append(Problem(str(path), "", f"cannot be read ({exc.strerror or exc})"))
        return []
    if path.suffix != ".jsonl":
        try:
            return [(str(path), json.loads(text))]
        except ValueError as exc:
            problems.append(Problem(str(path), "", f"not valid JSON ({exc})"))
            return []
    lines = text.split("\n")  # not splitlines: U+2028 may sit inside a JSON string
    if lines and lines[-1] == "":
        lines.pop()
    docs = []
    for i, line in enumerate(lines, start=1):
        try:
            docs.append((f"{path}:{i}", json.loads(line)))
        except ValueError as exc:
            problems.append(Problem(f"{path}:{i}", "", f"not valid JSON ({exc}); expected one JSON object per line"))
    return docs


#: Fields the report only prints, as found, and never computes with: a schema
#: violation there does not make the run unreadable. (``inputs.policy`` is
#: written as null when the default policy was used.)
_SHOWN_AS_FOUND: dict[str, tuple[str, ...]] = {"orchestration_summary.json": ("inputs",)}


def load_run(run_dir: str | Path) -> RunData:
    """Read and validate a run directory; ``LoadError`` lists every problem found."""
    from jsonschema import Draft202012Validator

    from interlock.adapters.outputs import OUTPUTS
    from interlock.core.output_schemas import output_schemas

    run = Path(run_dir)
    if not run.is_dir():
        what = "does not exist" if not run.exists() else "is not a directory"
        raise LoadError([Problem(str(run), "", f"{what}; expected a run directory written by interlock run")])
    problems: list[Problem] = []
    schemas = output_schemas()
    parsed: dict[str, list[Any]] = {}
    for name in OUTPUTS.names():
        validator = Draft202012Validator(schemas[name])
        docs = _read_docs(run / name, problems)
        shown_only = _SHOWN_AS_FOUND.get(name, ())
        for where, doc in docs:
            for err in sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path]):
                if err.absolute_path and err.absolute_path[0] in shown_only:
                    continue
                pointer = "".join(f"/{p}" for p in err.absolute_path)
                problems.append(Problem(where, pointer, err.message))
        parsed[name] = [doc for _, doc in docs]
    if problems:
        raise LoadError(problems)

    def one(name: str) -> dict[str, Any]:
        return parsed[name][0]

    return RunData(
        directory=run,
        summary=one(OUTPUTS.summary),
        executions=parsed[OUTPUTS.executions],
        transitions=parsed[OUTPUTS.transitions],
        conflicts=list(one(OUTPUTS.conflicts).get("conflicts", [])),
        rollbacks=parsed[OUTPUTS.rollbacks],
        signals=parsed[OUTPUTS.signals],
        health=one(OUTPUTS.health),
    )


def state_counts(transitions: Iterable[dict[str, Any]]) -> Counter[tuple[str, str, str]]:
    """How many call transitions took each (from, trigger, to) edge."""
    return Counter((t["from"], t["trigger"], t["to"]) for t in transitions if t.get("machine") == "call")


# --------------------------------------------------------------------------
# SVG plumbing
# --------------------------------------------------------------------------

_XML_PROLOGUE = re.compile(r"<\?xml[^>]*\?>\s*|<!DOCTYPE[^>]*>\s*", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_COMMENT = re.compile(r"<!--.*?-->\s*", re.S)
_ID = re.compile(r'\bid="([^"]+)"')


def _inline_svg(svg: str, scope: str, title: str) -> str:
    """An SVG document made fit to sit inside HTML: no prologue, no metadata,
    ids prefixed with ``scope`` (two charts in one page must not share ids),
    a ``<title>`` for screen readers, and CSS sizing instead of fixed points."""
    svg = _XML_PROLOGUE.sub("", svg)
    svg = _METADATA.sub("", svg)
    svg = _COMMENT.sub("", svg)
    ids = set(_ID.findall(svg))
    if ids:
        names = "|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True))
        svg = re.sub(rf'(\bid="|url\(#|href="#)({names})(?=[")])', lambda m: f"{m.group(1)}{scope}-{m.group(2)}", svg)
    svg = re.sub(r"<svg\b", f'<svg id="{scope}" class="chart" role="img"', svg, count=1)
    svg = re.sub(r'(<svg\b[^>]*?)\s(width|height)="[^"]*"', r"\1", svg, count=1)
    svg = re.sub(r'(<svg\b[^>]*?)\s(width|height)="[^"]*"', r"\1", svg, count=1)
    svg = re.sub(r"(<svg\b[^>]*>)", lambda m: m.group(1) + f"<title>{_esc(title)}</title>", svg, count=1)
    return svg.strip()


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


class _Charts:
    """matplotlib, set up once per report: Agg, text kept as text, stable ids."""

    def __init__(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.plt = plt
        self.rc = {
            "svg.fonttype": "none",
            "svg.hashsalt": "interlock-report",
            "font.family": "sans-serif",
            "font.sans-serif": FONTS,
            "font.size": 10,
            "axes.edgecolor": COLORS["faint"],
            "axes.labelcolor": COLORS["ink"],
            "axes.titlesize": 11,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "xtick.color": COLORS["muted"],
            "ytick.color": COLORS["muted"],
            "text.color": COLORS["ink"],
            "figure.facecolor": "white",
            "axes.facecolor": "white",
        }

    def svg(self, draw: Any, size: tuple[float, float], scope: str, title: str) -> str:
        import matplotlib

        with matplotlib.rc_context(self.rc):
            fig = self.plt.figure(figsize=size)
            try:
                draw(fig)
                buf = io.StringIO()
                fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
            finally:
                self.plt.close(fig)
        return _inline_svg(buf.getvalue(), scope, title)


# --------------------------------------------------------------------------
# Chart: the controller with this run's counts
# --------------------------------------------------------------------------


def _machine() -> tuple[list[Any], list[tuple[Any, str, Any]]]:
    from interlock.core.controller.machine import MACHINE, machine_edges
    from interlock.core.controller.states import State

    states = [State(n) for n in MACHINE.states]
    edges = [(src, trig, e.dest) for (src, trig), es in machine_edges(MACHINE, State).items() for e in es]
    return states, edges


def _layers(states: list[Any], edges: list[tuple[Any, str, Any]]) -> dict[Any, int]:
    """Column of each state: the longest path from the initial state, with two
    kinds of edge set aside: back edges (retries: ``fail``/``lose`` -> ``ready``)
    and edges between two final states (an operator's ``resolve``), which
    settle a call rather than move it on. Fixed by the machine's definition,
    so the picture only changes when the machine does."""
    from interlock.core.controller.states import FINAL, INITIAL

    succ: dict[Any, list[Any]] = defaultdict(list)
    for src, _, dst in edges:
        if dst not in succ[src]:
            succ[src].append(dst)
    back: set[tuple[Any, Any]] = set()
    colour: dict[Any, int] = {}

    def dfs(s: Any) -> None:  # 1 = on the stack, 2 = done
        colour[s] = 1
        for d in succ[s]:
            if colour.get(d) == 1:
                back.add((s, d))
            elif d not in colour:
                dfs(d)
        colour[s] = 2

    dfs(INITIAL)
    layer = {s: 0 for s in states}
    for _ in states:  # relaxation over a DAG: |states| rounds always suffice
        changed = False
        for src, _, dst in edges:
            if (src, dst) in back or (src in FINAL and dst in FINAL):
                continue
            if layer[dst] < layer[src] + 1:
                layer[dst] = layer[src] + 1
                changed = True
        if not changed:
            break
    return layer


def _rows(states: list[Any], edges: list[tuple[Any, str, Any]], layer: dict[Any, int]) -> dict[Any, int]:
    """Integer rows, column by column: each state goes to the free row nearest the
    mean row of its predecessors. Ties: the state reached earlier in the machine's
    edge order first, terminal states last (they move aside for the main path).
    A row that an edge into a non-terminal state passes through is avoided, so a
    box never sits on a line that skips its column."""
    from interlock.core.controller.states import INITIAL, TERMINAL

    first_seen = {INITIAL: -1}
    for i, (_, _, dst) in enumerate(edges):
        first_seen.setdefault(dst, i)
    preds: dict[Any, list[Any]] = defaultdict(list)
    for src, _, dst in edges:
        if layer[src] < layer[dst] and src not in preds[dst]:
            preds[dst].append(src)
    row: dict[Any, int] = {}
    for c in sorted(set(layer.values())):
        members = [s for s in states if layer[s] == c]
        blocked = {row[src] for src, _, dst in edges
                   if src in row and layer[src] < c < layer[dst] and dst not in TERMINAL}
        taken: set[int] = set()

        def desired(s: Any) -> float:
            ps = [row[p] for p in preds[s] if p in row]
            return sum(ps) / len(ps) if ps else 0.0

        for s in sorted(members, key=lambda s: (s in TERMINAL, first_seen.get(s, 1 << 30))):
            want = desired(s)
            candidates = sorted(range(-6, 7), key=lambda r: (abs(r - want) + (1.5 if r in blocked else 0),
                                                             abs(r), r))
            r = next(r for r in candidates if r not in taken)
            taken.add(r)
            row[s] = r
    return row


def _positions(states: list[Any], edges: list[tuple[Any, str, Any]],
               widths: dict[Any, float], gap: float) -> dict[Any, tuple[float, float]]:
    """(x, y) of each box centre: columns as wide as their widest box plus ``gap``."""
    layer = _layers(states, edges)
    row = _rows(states, edges, layer)
    cols = sorted(set(layer.values()))
    colw = {c: max(widths[s] for s in states if layer[s] == c) for c in cols}
    x, xs = 0.0, {}
    for c in cols:
        xs[c] = x + colw[c] / 2
        x += colw[c] + gap
    return {s: (xs[layer[s]], -row[s] * 1.0) for s in states}


def _bend(p1: tuple[float, float], p2: tuple[float, float]) -> tuple[float, float]:
    """(arc3 rad, where on the arc the label goes). Forward edges bend gently;
    back edges (retries) and edges within a column sag below by a fixed
    amount, whatever their length, so they stay inside the picture."""
    (x1, y1), (x2, y2) = p1, p2
    length = math.hypot(x2 - x1, y2 - y1) or 1.0
    if x2 > x1:
        if y1 == y2:
            return 0.0, 0.5
        if x2 - x1 < 4.5:
            return 0.12, 0.5
        # A long edge to another row arcs around the rows between, cresting just
        # beyond its destination's row, with its label on the crest.
        target = max(y1, y2) + 0.45 if y2 > y1 else min(y1, y2) - 0.45
        return 2 * ((y1 + y2) / 2 - target) / (x2 - x1), 0.5
    sag = 0.55 + 0.06 * abs(x2 - x1)
    return -2 * sag / length, 0.5


def _arc_point(p1: tuple[float, float], p2: tuple[float, float], rad: float, t: float) -> tuple[float, float]:
    """The point at ``t`` on arc3's quadratic Bezier (control: mid + rad * (dy, -dx))."""
    (x1, y1), (x2, y2) = p1, p2
    cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)
    a, b, c = (1 - t) ** 2, 2 * t * (1 - t), t * t
    return a * x1 + b * cx + c * x2, a * y1 + b * cy + c * y2


def _clipped_arc(p1: tuple[float, float], p2: tuple[float, float], rad: float,
                 half1: tuple[float, float], half2: tuple[float, float]) -> list[tuple[float, float]]:
    """arc3's quadratic Bezier from box centre to box centre, cut to the part
    outside both boxes (half sizes ``half1``, ``half2``): the three control
    points of that part. Done here because matplotlib's own patch clipping
    costs seconds for a few dozen arrows."""
    (x1, y1), (x2, y2) = p1, p2
    c = ((x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1))
    steps = 400
    pts = [_arc_point(p1, p2, rad, i / steps) for i in range(steps + 1)]

    def inside(p: tuple[float, float], centre: tuple[float, float], half: tuple[float, float]) -> bool:
        return abs(p[0] - centre[0]) <= half[0] and abs(p[1] - centre[1]) <= half[1]

    i0 = next((i for i, p in enumerate(pts) if not inside(p, p1, half1)), 0)
    i1 = next((i for i in range(steps, -1, -1) if not inside(pts[i], p2, half2)), steps)
    t0, t1 = i0 / steps, max(i1, i0) / steps

    def blossom(u: float, v: float) -> tuple[float, float]:
        a, b, d = (1 - u) * (1 - v), (1 - u) * v + u * (1 - v), u * v
        return a * x1 + b * c[0] + d * x2, a * y1 + b * c[1] + d * y2

    return [blossom(t0, t0), blossom(t0, t1), blossom(t1, t1)]


def _state_graph_matplotlib(charts: _Charts, counts: Counter, finals: dict[str, int]) -> str:
    """The drawing when Graphviz is absent: the machine's states as boxes in
    fixed columns, its transitions as arcs; an arc a call took is labelled
    with how many took it and drawn thicker, the others are faded."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from matplotlib.path import Path

    from interlock.core.controller.states import FINAL, INITIAL, RUNNING, TERMINAL

    states, edges = _machine()
    widths = {s: max(0.15 * len(s.value) + 0.5, 1.95 if finals.get(s.value) else 0.0) for s in states}
    pos = _positions(states, edges, widths, gap=1.3)
    merged: dict[tuple[Any, Any], list[tuple[str, int]]] = {}
    for src, trig, dst in edges:
        merged.setdefault((src, dst), []).append((trig, counts.get((src.value, trig, dst.value), 0)))
    visited = {s for s, _, _ in counts} | {d for _, _, d in counts}
    peak = max(counts.values(), default=0)
    h = 0.66
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    x_lo, x_hi = min(xs) - widths[INITIAL] / 2 - 0.9, max(x + widths[s] / 2 for s, (x, _) in pos.items()) + 0.2
    sags = [_arc_point(pos[a], pos[b], _bend(pos[a], pos[b])[0], 0.5)[1] for a, _, b in edges]
    y_lo, y_hi = min(ys + sags) - 0.5, max(ys + sags) + 0.5
    unit = 0.66  # inches per data unit: sets the text size against the boxes

    def draw(fig: Any) -> None:
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
        ax.set_axis_off()
        ax.set_xlim(x_lo, x_hi)
        ax.set_ylim(y_lo, y_hi)
        boxes = {}
        for s, (x, y) in pos.items():
            w = widths[s]
            used = s.value in visited
            alpha = 1.0 if used else 0.4
            face = COLORS["running_fill"] if s in RUNNING else "white"
            edge = COLORS["running_edge"] if s in RUNNING else COLORS["ink"]
            box = FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.14",
                                 facecolor=face, edgecolor=edge, linewidth=1.6 if used else 1.0,
                                 linestyle=(0, (4, 3)) if s in FINAL - TERMINAL else "-", alpha=alpha, zorder=3)
            ax.add_patch(box)
            boxes[s] = box
            if s in TERMINAL:  # a double border, as in the DOT drawing
                ax.add_patch(FancyBboxPatch((x - w / 2 + 0.06, y - h / 2 + 0.06), w - 0.12, h - 0.12,
                                            boxstyle="round,pad=0,rounding_size=0.1", facecolor="none",
                                            edgecolor=edge, linewidth=0.8, alpha=alpha, zorder=3))
            n_final = finals.get(s.value, 0)
            ax.text(x, y + (0.1 if n_final else 0), s.value, ha="center", va="center", fontsize=11,
                    color=COLORS["ink"] if used else COLORS["muted"], zorder=4,
                    fontweight="bold" if used else "normal")
            if n_final:
                ax.text(x, y - 0.17, f"{n_final} call{'s' if n_final != 1 else ''} ended here", ha="center",
                        va="center", fontsize=8.5, color=COLORS["accent"], zorder=4)
        x0, y0 = pos[INITIAL]
        start = x0 - widths[INITIAL] / 2 - 0.6
        ax.add_patch(FancyArrowPatch((start, y0), (x0 - widths[INITIAL] / 2, y0), arrowstyle="-|>",
                                     mutation_scale=12, color=COLORS["ink"], linewidth=1.2, zorder=2))
        ax.plot([start], [y0], "o", color=COLORS["ink"], markersize=5, zorder=2)
        for (src, dst), trigs in merged.items():
            n = sum(c for _, c in trigs)
            rad, at = _bend(pos[src], pos[dst])
            used = n > 0
            lw = 1.0 + (3.0 * math.log1p(n) / math.log1p(peak) if used and peak else 0.0)
            curve = _clipped_arc(pos[src], pos[dst], rad, (widths[src] / 2 + 0.03, h / 2 + 0.03),
                                 (widths[dst] / 2 + 0.05, h / 2 + 0.05))
            arrow = FancyArrowPatch(path=Path(curve, [Path.MOVETO, Path.CURVE3, Path.CURVE3]), arrowstyle="-|>",
                                    mutation_scale=10 + 2 * lw, color=COLORS["accent"] if used else COLORS["faint"],
                                    linewidth=lw, zorder=2 if used else 1)
            ax.add_patch(arrow)
            mx, my = _arc_point(pos[src], pos[dst], rad, at)
            if used:
                label = " · ".join(f"{trig} {c}" for trig, c in trigs if c)
                ax.text(mx, my, label, ha="center", va="center", fontsize=10, color=COLORS["accent"],
                        fontweight="bold", zorder=5,
                        bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none"})
            else:
                ax.text(mx, my, " / ".join(t for t, _ in trigs), ha="center", va="center", fontsize=7.5,
                        color="#94a3b8", zorder=1,
                        bbox={"boxstyle": "round,pad=0.08", "facecolor": "white", "edgecolor": "none",
                              "alpha": 0.85})

    return charts.svg(draw, ((x_hi - x_lo) * unit, (y_hi - y_lo) * unit), "chart-states",
                      "Controller state diagram: how many calls took each transition in this run")


def state_diagram(charts: _Charts, counts: Counter, finals: dict[str, int]) -> tuple[str, str]:
    """(inline SVG, engine): Graphviz when ``dot`` is on PATH and works, else matplotlib."""
    from interlock.core.controller import render

    if shutil.which("dot") is not None:
        from interlock.adapters.generate import render_svg

        try:
            svg = render_svg(render.dot(dict(counts))).decode("utf-8")
            return _inline_svg(svg, "chart-states", "Controller state diagram with this run's transition counts"), "graphviz"
        except (OSError, UnicodeDecodeError, subprocess.SubprocessError):  # a broken dot must not cost the report
            pass
    return _state_graph_matplotlib(charts, counts, finals), "matplotlib"


# --------------------------------------------------------------------------
# Charts: reliability, modes by risk, health over time
# --------------------------------------------------------------------------


def reliability_diagram(charts: _Charts, cal: dict[str, Any]) -> str:
    """Predicted confidence against observed success, one point per non-empty bin."""
    rows = [b for b in cal["bins"] if b["count"]]
    peak = max((b["count"] for b in rows), default=1)

    def draw(fig: Any) -> None:
        ax = fig.add_axes((0.13, 0.14, 0.82, 0.78))
        ax.plot([0, 1], [0, 1], linestyle="--", color=COLORS["muted"], linewidth=1, label="perfect calibration")
        for b in cal["bins"]:
            if b["count"]:
                ax.bar(b["lo"], b["success_rate"], width=b["hi"] - b["lo"], align="edge",
                       color=COLORS["accent"], alpha=0.12, edgecolor=COLORS["accent"], linewidth=0.6)
        xs = [b["mean_confidence"] for b in rows]
        ys = [b["success_rate"] for b in rows]
        ax.plot(xs, ys, color=COLORS["accent"], linewidth=1.6, zorder=3)
        ax.scatter(xs, ys, s=[40 + 260 * b["count"] / peak for b in rows], color=COLORS["accent"],
                   edgecolor="white", linewidth=1.2, zorder=4, label="observed (size = calls)")
        for b in rows:
            radius = math.sqrt(40 + 260 * b["count"] / peak) / 2  # marker radius in points
            ax.annotate(f"n={b['count']}", (b["mean_confidence"], b["success_rate"]), textcoords="offset points",
                        xytext=(-(radius + 4), 0), ha="right", va="center", fontsize=8.5,
                        color=COLORS["muted"])
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.03, 1.05)
        ax.set_xlabel("predicted confidence")
        ax.set_ylabel("observed success rate")
        ax.grid(True, color=COLORS["grid"], linewidth=0.6)
        ax.set_axisbelow(True)
        ax.legend(loc="upper left", frameon=False, fontsize=8)

    return charts.svg(draw, (5.6, 4.2), "chart-reliability",
                      "Reliability diagram: predicted confidence against observed success")


def modes_by_risk(charts: _Charts, table: dict[str, dict[str, int]]) -> str:
    """Stacked bars: for each risk, how many calls ran in each mode (or never ran)."""
    stacks = [*MODES, "not_run"]
    labels = {"mock": "mock", "dry_run": "dry run", "live": "live", "not_run": "did not run"}

    def draw(fig: Any) -> None:
        ax = fig.add_axes((0.14, 0.22, 0.82, 0.7))
        bottoms = [0] * len(RISKS)
        for m in stacks:
            vals = [table[r][m] for r in RISKS]
            bars = ax.bar(RISKS, vals, bottom=bottoms, color=COLORS[m], label=labels[m], width=0.6,
                          edgecolor="white", linewidth=1)
            for bar, v, b in zip(bars, vals, bottoms):
                if v:
                    ax.text(bar.get_x() + bar.get_width() / 2, b + v / 2, str(v), ha="center", va="center",
                            fontsize=9, color=COLORS["ink"] if m in ("not_run", "mock", "dry_run") else "white",
                            fontweight="bold")
            bottoms = [b + v for b, v in zip(bottoms, vals)]
        ax.set_ylabel("calls")
        ax.set_xlabel("risk")
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.grid(True, axis="y", color=COLORS["grid"], linewidth=0.6)
        ax.set_axisbelow(True)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=4, frameon=False, fontsize=8.5)
        ax.set_ylim(0, max(bottoms + [1]) * 1.12)

    return charts.svg(draw, (5.6, 4.2), "chart-modes", "Modes by risk: how many calls ran in each mode")


def health_over_time(charts: _Charts, history: list[dict[str, Any]], anomalies: list[dict[str, Any]],
                     locks: list[tuple[float, str]], t0: float) -> str:
    """Health score after each observation; anomalies and lock changes as marks on the time axis."""

    def draw(fig: Any) -> None:
        ax = fig.add_axes((0.07, 0.17, 0.9, 0.73))
        for lo, hi, colour in ((0, 50, COLORS["bad"]), (50, 80, COLORS["warn"]), (80, 100, COLORS["good"])):
            ax.axhspan(lo, hi, color=colour, alpha=0.05, linewidth=0)
        pts = [(h["time"] - t0, h["health_score"]) for h in history if h["health_score"] is not None]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, color=COLORS["accent"], linewidth=1.8, marker="o", markersize=3.5, zorder=3,
                    label="health score")
        tops = [p[0] for p in pts] + [a["time"] - t0 for a in anomalies] + [t - t0 for t, _ in locks]
        span = (max(tops) - min(tops)) if len(tops) > 1 else 1.0
        for i, a in enumerate(anomalies):
            x = a["time"] - t0
            ax.axvline(x, color=COLORS["bad"], linewidth=1.2, linestyle=":", zorder=4)
            ax.annotate(f"{a['kind']} (sev {a['severity']})", (x, 100), xytext=(4, -12 - 12 * (i % 3)),
                        textcoords="offset points", fontsize=8, color=COLORS["bad"], zorder=5)
        for t, what in locks:
            x = t - t0
            ax.axvline(x, color=COLORS["ink"], linewidth=1.4, zorder=4)
            ax.annotate(what, (x, 3), xytext=(4, 4), textcoords="offset points", fontsize=8,
                        color=COLORS["ink"], fontweight="bold")
        ax.set_ylim(0, 104)
        if tops:
            ax.set_xlim(min(tops) - 0.03 * span, max(tops) + 0.05 * span)
        ax.set_xlabel("seconds since the run started")
        ax.set_ylabel("health (0–100)")
        ax.grid(True, color=COLORS["grid"], linewidth=0.6)
        ax.set_axisbelow(True)

    return charts.svg(draw, (11.4, 3.3), "chart-health", "Health score over time, with anomalies")


# --------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------

_EXIT_MEANING = {
    0: "every call ended as planned",
    1: "some call failed, was rejected, cancelled or rolled back",
    2: "invalid input (nothing ran)",
    3: "the environment failed",
}
_METRIC_ORDER = (
    ("tool_success_rate", "tool success rate", "rate"),
    ("execution_latency_ms", "execution latency (mean / p95)", "latency"),
    ("rollback_frequency", "rollback frequency", "rate"),
    ("conflict_rate", "conflict rate", "rate"),
    ("live_execution_ratio", "live execution ratio", "rate"),
    ("confidence_drift", "confidence drift", "rate"),
    ("approval_rate", "approval rate", "rate"),
    ("system_health_score", "system health score", "score"),
)


def _when(t: float | None) -> str:
    if t is None:
        return "—"
    if t < 1e9:  # a FakeClock run: seconds from zero, not a date
        return f"t={t:.3f} s (fake clock)"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _num(x: Any, digits: int = 2) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    return f"{x:.{digits}f}"


def _metric_rows(metrics: dict[str, Any]) -> list[dict[str, str]]:
    reasons = metrics.get("null_reasons") or {}
    rows = []
    for key, label, kind in _METRIC_ORDER:
        v = metrics.get(key)
        if kind == "latency":
            v = v or {}
            text = "—" if v.get("mean") is None else f"{v['mean']:.1f} ms / {_num(v.get('p95'), 1)} ms"
        elif kind == "score":
            text = _num(v, 1)
        else:
            text = "—" if v is None else f"{v:.3f}"
        rows.append({"name": label, "key": key, "value": text, "note": reasons.get(key, "")})
    return rows


def build_context(data: RunData, charts: _Charts | None = None) -> dict[str, Any]:
    """Everything the template shows, as plain values (charts as inline SVG strings)."""
    from interlock.core.learning import calibration, samples_from_executions

    charts = charts or _Charts()
    s = data.summary
    calls = s.get("calls", [])
    counts = s.get("counts", {})
    by_state = counts.get("by_state", {})
    t0 = s.get("started_at") or 0.0
    tc = state_counts(data.transitions)
    diagram, engine = state_diagram(charts, tc, by_state)

    samples = samples_from_executions(data.executions)
    cal = calibration([(x["confidence"], x["success"]) for x in samples])
    reliability = reliability_diagram(charts, cal) if samples else None

    table = {r: {m: 0 for m in (*MODES, "not_run")} for r in RISKS}
    for c in calls:
        table[c["risk"]][c["mode"] or "not_run"] += 1
    modes = modes_by_risk(charts, table) if calls else None

    history = data.health.get("history", [])
    anomalies = data.health.get("anomalies", [])
    locks = [(t["time"], f"{t['to']} ({t['rule']})") for t in data.transitions if t.get("machine") == "system"]
    health = (health_over_time(charts, history, anomalies, locks, t0)
              if any(h.get("health_score") is not None for h in history) else None)

    signals = defaultdict(list)
    for sig in data.signals:
        signals[sig["signal"]].append(sig)
    lock = s.get("lock", {})
    exit_code = s.get("exit_code")
    kpis = [
        ("calls", len(calls), ""),
        *((state, n, f"state-{state}") for state, n in sorted(by_state.items(), key=lambda kv: -kv[1])),
        ("conflicts", s.get("conflicts", len(data.conflicts)), ""),
        ("rollbacks", s.get("rollbacks", len(data.rollbacks)), ""),
        ("anomalies", len(anomalies), "bad" if anomalies else ""),
    ]
    health_score = data.health.get("health_score")
    return {
        "run_id": s.get("run_id", ""),
        "directory": str(data.directory),
        "exit_code": exit_code,
        "exit_meaning": _EXIT_MEANING.get(exit_code, ""),
        "lock": lock,
        "started": _when(s.get("started_at")),
        "finished": _when(s.get("finished_at")),
        "duration": (f"{s['finished_at'] - s['started_at']:.3f} s"
                     if s.get("finished_at") is not None and s.get("started_at") is not None else "—"),
        "inputs": _inputs(s.get("inputs")),
        "kpis": kpis,
        "by_mode": counts.get("by_mode", {}),
        "health_score": health_score,
        "health_class": ("none" if health_score is None else "good" if health_score >= 80
                         else "warn" if health_score >= 50 else "bad"),
        "metrics": _metric_rows(s.get("metrics") or data.health.get("metrics") or {}),
        "audit": s.get("audit", {}),
        "diagram": diagram,
        "diagram_engine": engine,
        "dot_text": _dot(tc),
        "mermaid_text": _mermaid(tc),
        "transitions_total": sum(tc.values()),
        "reliability": reliability,
        "calibration": cal,
        "modes": modes,
        "mode_table": table,
        "health_chart": health,
        "window": data.health.get("window", "?"),
        "anomalies": [{**a, "at": a["time"] - t0} for a in anomalies],
        "conflicts": data.conflicts,
        "rollbacks": [{**r, "args_text": json.dumps(r.get("args") or {}, sort_keys=True)} for r in data.rollbacks],
        "calls": calls,
        "executions": len(data.executions),
        "reliability_signals": signals.get("TOOL_RELIABILITY", []),
        "mismatches": signals.get("APPROVAL_MISMATCH", []),
        "mode_analysis": signals.get("EXECUTION_MODE_ANALYSIS", []),
        "colors": COLORS,
    }


def _inputs(inputs: Any) -> list[tuple[str, str, str]]:
    """(kind, path, short digest) of each input file named in the summary."""
    out = []
    for kind, v in sorted(inputs.items()) if isinstance(inputs, dict) else ():
        if isinstance(v, dict) and isinstance(v.get("path"), str):
            out.append((kind, v["path"], str(v.get("sha256") or "")[:12]))
    return out


def _dot(counts: Counter) -> str:
    from interlock.core.controller import render

    return render.dot(dict(counts))


def _mermaid(counts: Counter) -> str:
    from interlock.core.controller import render

    return render.mermaid(dict(counts))


def build_report(run_dir: str | Path) -> str:
    """The HTML text of the report of ``run_dir`` (LoadError when it is not a sound run)."""
    import jinja2
    from markupsafe import Markup

    data = load_run(run_dir)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["pct"] = lambda x: "—" if x is None else f"{100 * x:.0f}%"
    ctx = build_context(data)
    ctx = {k: (Markup(v) if k in _SVG_KEYS and v else v) for k, v in ctx.items()}
    return env.get_template("report.html.j2").render(**ctx)


#: Context keys holding SVG produced here (matplotlib or Graphviz escape their text).
_SVG_KEYS = frozenset({"diagram", "reliability", "modes", "health_chart"})


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report (default ``RUN_DIR/report.html``) atomically; returns its path."""
    from interlock.adapters.outputs import write_text_atomic

    text = build_report(run_dir)
    path = Path(out) if out is not None else Path(run_dir) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)
    return path
