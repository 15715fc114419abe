"""Generated files cannot drift from the controller definition that runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from interlock.adapters import generate
from interlock.core.controller import render

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("rel", sorted(generate.ARTIFACTS))
def test_committed_file_equals_its_producer(rel):
    path = ROOT / rel
    assert path.is_file(), f"{rel} is missing: run python -m interlock.adapters.generate"
    assert path.read_text(encoding="utf-8") == generate.ARTIFACTS[rel](), (
        f"{rel} drifted from the definition: run python -m interlock.adapters.generate")


def test_controller_artifacts_are_registered():
    assert {"docs/controller.mmd", "docs/controller.dot", "specs/controller.md"} <= set(generate.ARTIFACTS)
    assert generate.repo_root() == ROOT


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed on this machine")
def test_committed_svg_equals_dot_output():
    path = ROOT / generate.SVG_PATH
    assert path.is_file(), "docs/controller.svg is missing: run python -m interlock.adapters.generate"
    assert path.read_bytes() == generate.render_svg(render.dot())


def _copy(tmp_path: Path) -> Path:
    for rel in generate.ARTIFACTS:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / rel, tmp_path / rel)
    return tmp_path


def test_check_exits_1_listing_only_the_drifted_files(tmp_path, capsys):
    root = _copy(tmp_path)
    assert generate.main(["--check", "--root", str(root)]) == 0
    (root / "docs/controller.mmd").write_text("stateDiagram-v2\n", encoding="utf-8")
    (root / "specs/controller.md").unlink()
    capsys.readouterr()
    assert generate.main(["--check", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "drifted: docs/controller.mmd" in out and "drifted: specs/controller.md" in out
    assert "docs/controller.dot" not in out


def test_write_creates_every_artifact_and_then_has_nothing_to_do(tmp_path, capsys):
    assert generate.main(["--root", str(tmp_path)]) == 0
    for rel, produce in generate.ARTIFACTS.items():
        assert (tmp_path / rel).read_text(encoding="utf-8") == produce()
    assert generate.drifted(tmp_path) == []
    capsys.readouterr()
    assert generate.main(["--root", str(tmp_path)]) == 0
    assert "nothing to write" in capsys.readouterr().out
