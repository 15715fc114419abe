"""``interlock report`` on real runs: what the page holds, that it fetches nothing,
that it is refused for broken runs, and (when Chromium is installed) that a
real browser renders its charts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from interlock.adapters.cli import main
from interlock.adapters.report import build_report, load_run, state_counts
from interlock.core.errors import LoadError

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
CHARTS = ("chart-states", "chart-reliability", "chart-modes", "chart-health")
SEED_FILES = {"VERSION": "1.1.0\n", "README.md": "# Demo\n", "config.yaml": "retries: 3\n",
              "CHANGELOG.md": "# Changelog\n", "cache/build.tmp": "stale\n"}


def run_cli(tmp: Path, plans: Path, *extra: str, policy: Path | None = EX / "fs/policy.yaml") -> Path:
    """``interlock run`` in-process on the fs example (deterministic clock), in a fresh workspace."""
    ws = tmp / "ws"
    for rel, text in SEED_FILES.items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(text)
    out = tmp / "run"
    args = ["run", "--catalog", str(EX / "fs/catalog.yaml"), "--plans", str(plans),
            "--approvals", str(EX / "fs/approvals.yaml"),
            "--tools", str(EX / "tools/fs_tools.py"), "--tools", str(EX / "tools/release_tools.py"),
            "--state-dir", str(tmp / "state"), "--out", str(out), "--fake-clock", "--seed", "7", "--quiet",
            *extra]
    if policy is not None:
        args += ["--policy", str(policy)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INTERLOCK_WORKSPACE", str(ws))
        assert main(args) in (0, 1)
    return out


@pytest.fixture(scope="module")
def fs_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_cli(tmp_path_factory.mktemp("fs"), EX / "fs/plans.yaml")


@pytest.fixture(scope="module")
def fs_report(fs_run: Path) -> str:
    assert main(["report", str(fs_run)]) == 0
    return (fs_run / "report.html").read_text(encoding="utf-8")


class Page(HTMLParser):
    """Elements by id, tables' body rows, every svg, every src/href, and the text of each svg."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: dict[str, str] = {}
        self.svgs: list[str] = []
        self.links: list[str] = []
        self.tags: Counter[str] = Counter()
        self.svg_text: dict[str, list[str]] = {}
        self.rows: dict[str, int] = Counter()
        self._svg: str | None = None
        self._table: str | None = None
        self._in_body = False
        self._in_text = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags[tag] += 1
        if a.get("id"):
            self.ids.setdefault(a["id"], tag)
        for key in ("src", "href", "xlink:href", "action", "poster", "data"):
            if a.get(key):
                self.links.append(a[key])
        if tag == "svg" and self._svg is None:
            self._svg = a.get("id") or f"svg{len(self.svgs)}"
            self.svgs.append(self._svg)
            self.svg_text[self._svg] = []
        if tag == "text" and self._svg:
            self._in_text = True
        if tag == "table":
            self._table = a.get("id")
        if tag == "tbody":
            self._in_body = True
        if tag == "tr" and self._in_body and self._table and "why" not in (a.get("class") or ""):
            self.rows[self._table] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._svg = None
        if tag == "text":
            self._in_text = False
        if tag == "tbody":
            self._in_body = False
        if tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._in_text and self._svg:
            self.svg_text[self._svg].append(data)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


# --------------------------------------------------------------------------
# Structure of a real run's report
# --------------------------------------------------------------------------


def test_report_has_every_chart_as_inline_svg_and_every_table(fs_run: Path, fs_report: str) -> None:
    page = Page(fs_report)
    for chart in CHARTS:
        assert page.ids.get(chart) == "svg", f"{chart} missing"
        assert page.svg_text[chart], f"{chart} has no text (an empty drawing?)"
    summary = json.loads((fs_run / "orchestration_summary.json").read_text())
    conflicts = json.loads((fs_run / "tool_conflicts.json").read_text())["conflicts"]
    rollbacks = jsonl(fs_run / "rollback_events.jsonl")
    assert page.rows["calls-table"] == len(summary["calls"]) == 12
    assert page.rows["conflicts-table"] == len(conflicts) == 3
    assert page.rows["rollbacks-table"] == len(rollbacks) == 1
    assert page.rows["anomalies-table"] == len(summary["anomalies"]) >= 1
    assert page.rows["metrics-table"] == 8
    assert summary["run_id"] in fs_report
    assert page.ids["exit-code"] and f"exit {summary['exit_code']}" in fs_report
    assert page.ids["lock-state"] and f"system {summary['lock']['state']}" in fs_report
    for c in summary["calls"]:  # each call with its rule and final state
        assert f"<code>{c['call_id']}</code>" in fs_report and f"<code>{c['rule']}</code>" in fs_report
    assert "alice" in fs_report  # the approver of release-1.2.0/tag


def test_report_fetches_nothing(fs_report: str) -> None:
    page = Page(fs_report)
    assert not [u for u in page.links if not u.startswith("#")], page.links
    for tag in ("script", "link", "img", "iframe", "object", "embed"):
        assert page.tags[tag] == 0, tag
    assert "@import" not in fs_report and "url(http" not in fs_report
    assert "<style>" in fs_report  # the CSS is inline


def test_state_diagram_labels_every_taken_edge_with_its_count(fs_run: Path, fs_report: str) -> None:
    counts = state_counts(jsonl(fs_run / "execution_state_transitions.jsonl"))
    assert counts[("ready", "dispatch", "running_live")] == 8
    text = " ".join(Page(fs_report).svg_text["chart-states"])
    for (_src, trigger, _dst), n in counts.items():
        assert f"{trigger} {n}" in text, (trigger, n)
    assert "dispatch 8" in text and "rollback 1" in text
    assert "n=8" in fs_report  # the DOT/Mermaid text carries the same counts


def test_reliability_counts_only_real_outcomes(fs_run: Path, fs_report: str) -> None:
    real = [e for e in jsonl(fs_run / "tool_execution_log.jsonl")
            if e["mode"] in ("dry_run", "live") and e["outcome"] in ("succeeded", "failed")]
    labels = [t for t in Page(fs_report).svg_text["chart-reliability"] if t.startswith("n=")]
    assert sum(int(t[2:]) for t in labels) == len(real) == 11


def test_modes_and_health_charts_show_this_run(fs_run: Path, fs_report: str) -> None:
    page = Page(fs_report)
    modes = page.svg_text["chart-modes"]
    summary = json.loads((fs_run / "orchestration_summary.json").read_text())
    live_medium = sum(1 for c in summary["calls"] if c["risk"] == "medium" and c["mode"] == "live")
    assert str(live_medium) in modes and "dry run" in modes and "did not run" in modes
    health = " ".join(page.svg_text["chart-health"])
    for a in summary["anomalies"]:
        assert a["kind"] in health


def test_a_lock_during_the_run_is_marked_on_the_health_chart(fs_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "locked"
    shutil.copytree(fs_run, run, ignore=shutil.ignore_patterns("report.html"))
    path = run / "execution_state_transitions.jsonl"
    lines = jsonl(path)
    mid = lines[len(lines) // 2]
    lock = {**mid, "machine": "system", "call_id": None, "plan_id": None, "agent_id": None, "from": "unlocked",
            "trigger": "lock", "to": "locked", "rule": "unsafe_escalation", "detail": {}}
    path.write_text("".join(json.dumps(x) + "\n" for x in [*lines, lock]))
    text = build_report(run)
    assert "locked (unsafe_escalation)" in Page(text).svg_text["chart-health"]
    assert state_counts(jsonl(path)) == state_counts(lines)  # the lock is not a call transition


def test_same_run_same_bytes_wherever_written(fs_run: Path, fs_report: str, tmp_path: Path) -> None:
    out = tmp_path / "deep" / "r.html"
    assert main(["report", str(fs_run), "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == fs_report


# --------------------------------------------------------------------------
# Empty runs, broken runs, Graphviz
# --------------------------------------------------------------------------


def test_run_without_executions_renders_with_no_data_notes(tmp_path: Path) -> None:
    plans = tmp_path / "plans.yaml"
    plans.write_text("schema_version: 1\nplans:\n  - plan_id: p\n    agent_id: a\n    steps:\n"
                     "      - {id: w, tool: fs.write_file, args: {path: x.txt, content: hi}, confidence: 0.9}\n")
    policy = tmp_path / "deny.yaml"
    policy.write_text("schema_version: 1\ntools:\n  fs.write_file: {deny: true}\n")
    run = run_cli(tmp_path, plans, policy=policy)
    assert jsonl(run / "tool_execution_log.jsonl") == []
    assert main(["report", str(run)]) == 0
    text = (run / "report.html").read_text()
    page = Page(text)
    for note in ("reliability-nodata", "health-nodata", "anomalies-nodata", "conflicts-nodata", "rollbacks-nodata"):
        assert note in page.ids, note
    assert page.ids.get("chart-states") == "svg"  # the machine is drawn, never a blank
    assert "reject 1" in " ".join(page.svg_text["chart-states"])
    assert page.rows["calls-table"] == 1 and "rejected" in text


def test_run_without_calls_renders(tmp_path: Path) -> None:
    plans = tmp_path / "plans.yaml"
    plans.write_text("schema_version: 1\nplans: []\n")
    run = run_cli(tmp_path, plans, policy=None)
    assert main(["report", str(run)]) == 0
    page = Page((run / "report.html").read_text())
    assert {"modes-nodata", "calls-nodata", "reliability-nodata"} <= set(page.ids)


def test_missing_directory_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope"
    assert main(["report", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "does not exist" in err


def test_broken_run_exits_2_with_every_problem(fs_run: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "broken"
    shutil.copytree(fs_run, run, ignore=shutil.ignore_patterns("report.html"))
    log = run / "tool_execution_log.jsonl"
    lines = log.read_text().splitlines()
    lines[2] = lines[2][:40]  # a truncated line
    log.write_text("\n".join(lines) + "\n")
    summary = json.loads((run / "orchestration_summary.json").read_text())
    del summary["calls"][0]["final_state"]
    (run / "orchestration_summary.json").write_text(json.dumps(summary))
    (run / "rollback_events.jsonl").unlink()
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{log}:3: (document): not valid JSON" in err
    assert "orchestration_summary.json: /calls/0: 'final_state' is a required property" in err
    assert "rollback_events.jsonl: (document): missing" in err
    assert not (run / "report.html").exists()
    with pytest.raises(LoadError) as exc:
        load_run(run)
    assert len(exc.value.problems) == 3


def _fake_dot(bin_dir: Path, script: str) -> None:
    bin_dir.mkdir()
    dot = bin_dir / "dot"
    dot.write_text("#!/bin/sh\n" + script)
    dot.chmod(0o755)


def test_graphviz_draws_the_diagram_when_dot_is_installed(fs_run: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    seen = tmp_path / "dot-input.txt"
    _fake_dot(tmp_path / "bin", f"cat > {seen}\n"
              "printf '<?xml version=\"1.0\"?>\\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10pt\" "
              "height=\"10pt\"><g id=\"graph0\"><text>from-graphviz</text></g></svg>\\n'\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    text = build_report(fs_run)
    page = Page(text)
    assert page.svg_text["chart-states"] == ["from-graphviz"]
    assert "drawn with graphviz" in text and "<?xml" not in text
    assert 'id="chart-states-graph0"' in text  # ids scoped to their chart
    dot_input = seen.read_text()
    assert "digraph controller" in dot_input and 'label="dispatch (2) [live_permitted, !needs_approval] n=8"' in dot_input


def test_a_failing_dot_falls_back_to_matplotlib(fs_run: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_dot(tmp_path / "bin", "echo 'Error: broken install' >&2\nexit 1\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    text = build_report(fs_run)
    assert "drawn with matplotlib" in text
    assert "dispatch 8" in " ".join(Page(text).svg_text["chart-states"])


# --------------------------------------------------------------------------
# A real browser
# --------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)")
def test_chromium_renders_every_chart(fs_run: Path, fs_report: str, tmp_path: Path) -> None:
    url = (fs_run / "report.html").resolve().as_uri()
    proc = _chromium(tmp_path, "--dump-dom", url)
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = Page(proc.stdout)
    for chart in CHARTS:
        assert page.ids.get(chart) == "svg", f"{chart} not in the rendered DOM"
        assert page.svg_text[chart]
    assert page.rows["calls-table"] == 12

    shot = tmp_path / "shot.png"
    proc = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,1600", url)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (1600, 1280)
    assert pixels.std() > 0.05  # something was drawn, not a blank page
