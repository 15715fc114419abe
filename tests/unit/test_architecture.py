"""The architecture of SPEC section 1, enforced: core is pure and never imports adapters.

import-linter holds the contracts (pyproject.toml, [tool.importlinter]). grimp
cannot see the editable namespace package, so the contracts run against a
temporary tree where ``interlock/core`` and ``interlock/adapters`` are
symlinks to this checkout. An AST scan adds what import-linter cannot see:
calls such as ``open(``, ``print(`` and ``datetime.now()`` in core.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

FORBIDDEN_MODULES = {"os", "io", "time", "random", "subprocess", "socket", "sqlite3", "threading",
                     "asyncio", "logging", "pathlib"}
FORBIDDEN_CALLS = {"open", "print", "input", "exec", "eval"}
FORBIDDEN_METHODS = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today")}


def _tree(tmp_path: Path, core: Path) -> Path:
    pkg = tmp_path / "interlock"
    pkg.mkdir()
    if core == ROOT / "core":
        (pkg / "core").symlink_to(core, target_is_directory=True)
    else:
        shutil.move(str(core), pkg / "core")
    (pkg / "adapters").symlink_to(ROOT / "adapters", target_is_directory=True)
    shutil.copyfile(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(tree: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(tree))
    return subprocess.run([str(LINT_IMPORTS), "--config", "pyproject.toml", "--no-cache"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=300)


needs_lint_imports = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed")


@needs_lint_imports
def test_import_contracts_hold(tmp_path):
    proc = _lint(_tree(tmp_path, ROOT / "core"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


@needs_lint_imports
def test_import_contracts_can_fail(tmp_path):
    core = tmp_path / "core_copy"
    shutil.copytree(ROOT / "core", core, ignore=shutil.ignore_patterns("__pycache__"))
    (core / "_leak.py").write_text('"""Reads the environment: forbidden in core."""\nimport os\n', encoding="utf-8")
    (core / "_reach.py").write_text("from interlock.adapters import cli\n", encoding="utf-8")
    tree = tmp_path / "tree"
    tree.mkdir()
    proc = _lint(_tree(tree, core))
    assert proc.returncode != 0
    assert "interlock.core._leak -> os" in proc.stdout
    assert "interlock.core._reach -> interlock.adapters" in proc.stdout


def _core_files() -> list[Path]:
    return sorted(p for p in (ROOT / "core").rglob("*.py") if "__pycache__" not in p.parts)


def _problems(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            if name.split(".")[0] in FORBIDDEN_MODULES:
                out.append(f"{path.relative_to(root)}:{node.lineno}: imports {name}")
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in FORBIDDEN_CALLS:
                out.append(f"{path.relative_to(root)}:{node.lineno}: calls {f.id}()")
            if isinstance(f, ast.Attribute) and isinstance(f.value, (ast.Name, ast.Attribute)):
                owner = f.value.id if isinstance(f.value, ast.Name) else f.value.attr
                if (owner, f.attr) in FORBIDDEN_METHODS:
                    out.append(f"{path.relative_to(root)}:{node.lineno}: calls {owner}.{f.attr}()")
    return out


def test_core_source_does_no_io():
    files = _core_files()
    assert len(files) > 10
    problems = [p for f in files for p in _problems(f)]
    assert not problems, "\n".join(problems)


def test_the_scan_catches_what_it_forbids(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os.path\nfrom time import monotonic\nimport datetime\n"
                   "x = datetime.datetime.now()\nprint(open('f').read())\n", encoding="utf-8")
    found = _problems(bad, root=tmp_path)
    assert [f.split(": ", 1)[1] for f in found] == [
        "imports os.path", "imports time", "calls datetime.now()", "calls print()", "calls open()"], found
