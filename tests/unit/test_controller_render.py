"""Diagrams and the transition table are generated from the Machine, deterministically."""

from __future__ import annotations

import re

import pytest

from interlock.adapters import cli, cmd_diagram
from interlock.core.controller import render
from interlock.core.controller.machine import CONTROLLER, MACHINE
from interlock.core.controller.states import GUARD_RULES, STATE_MEANING, TERMINAL, State


def _machine_edges():
    """(src, trigger, dst, conditions, unless) straight from the transitions.Machine."""
    out = []
    for trigger, event in MACHINE.events.items():
        for src, ts in event.transitions.items():
            for t in ts:
                out.append((src, trigger, t.dest,
                            tuple(c.func for c in t.conditions if c.target),
                            tuple(c.func for c in t.conditions if not c.target)))
    return out


def test_every_machine_edge_is_drawn_once_with_its_guards():
    text = render.mermaid()
    lines = [ln.strip() for ln in text.splitlines() if "-->" in ln and "[*]" not in ln]
    assert len(lines) == len(_machine_edges())
    for src, trigger, dst, conds, unless in _machine_edges():
        matching = [ln for ln in lines if ln.startswith(f"{src} --> {dst}: {trigger}")]
        assert matching, (src, trigger, dst)
        for c in conds:
            assert any(c in ln for ln in matching)
        for u in unless:
            assert any("!" + u in ln for ln in matching)


def test_mermaid_marks_initial_and_terminal_states():
    text = render.mermaid()
    assert text.startswith("%%") and "stateDiagram-v2" in text
    assert "[*] --> proposed" in text
    for s in State:
        assert (f"{s.value} --> [*]" in text) == (s in TERMINAL)
    assert "dispatch (1) [needs_approval]" in text
    assert "dispatch (2) [live_permitted, !needs_approval]" in text
    assert "dispatch (4)\n" in text  # the unguarded MOCK fallback


def test_dot_is_a_digraph_with_every_edge():
    text = render.dot()
    assert text.startswith("//") and "digraph controller {" in text and text.rstrip().endswith("}")
    assert len(re.findall(r'^  "\w+" -> "\w+" \[label=', text, flags=re.M)) == len(_machine_edges())
    for s in TERMINAL:
        assert f'"{s.value}" [peripheries=2];' in text


def test_output_is_deterministic_and_independent_of_the_machine_model_state():
    before = (render.mermaid(), render.dot(), render.transition_table_md())
    MACHINE.set_state("running_live", MACHINE.model)
    try:
        assert (render.mermaid(), render.dot(), render.transition_table_md()) == before
    finally:
        MACHINE.set_state("proposed", MACHINE.model)


def test_counts_annotate_edges():
    counts = {(State.READY, "dispatch", State.RUNNING_MOCK): 7, ("proposed", "accept", "waiting"): 12}
    text = render.mermaid(counts)
    assert "proposed --> waiting: accept n=12" in text
    assert "ready --> running_mock: dispatch (4) n=7" in text
    assert "ready --> running_live: dispatch (2) [live_permitted, !needs_approval] n=0" in text
    dot = render.dot(counts)
    assert 'label="accept n=12", penwidth=4.00' in dot
    assert "n=" not in render.mermaid()


def test_table_lists_states_guard_rules_and_ordered_edges():
    md = render.transition_table_md()
    for s in State:
        assert f"| `{s.value}` |" in md and STATE_MEANING[s] in md
    for rule in GUARD_RULES.values():
        assert rule in md
    for trigger in CONTROLLER.triggers:
        assert f"### `{trigger}`" in md
    assert "| `ready` | 1 | `awaiting_approval` | `needs_approval` |  |" in md
    assert "| `ready` | 4 | `running_mock` |  |  |" in md
    assert "## The system lock machine" in md and "| `locked` | `unlock` | `unlocked` |" in md
    assert "every guarded" not in md and "every edge is guarded" in md  # PARTIAL documented


def test_cli_diagram_prints_mermaid_and_writes_dot(tmp_path, capsysbinary):
    assert cli.main(["diagram"]) == 0
    assert capsysbinary.readouterr().out.decode() == render.mermaid()
    out = tmp_path / "sub" / "c.dot"
    assert cli.main(["diagram", "--format", "dot", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render.dot()


def test_cli_svg_without_graphviz_exits_3_with_advice(monkeypatch, capsys):
    monkeypatch.setattr(cmd_diagram.shutil, "which", lambda name: None)
    assert cli.main(["diagram", "--format", "svg"]) == 3
    assert "Graphviz 'dot' is not installed; use --format mermaid or dot, or install graphviz" \
        in capsys.readouterr().err


def test_cli_rejects_an_unknown_format():
    with pytest.raises(SystemExit) as info:
        cli.main(["diagram", "--format", "png"])
    assert info.value.code == 2
