"""Tool registry: decorators, explicit registration, --tools modules (SPEC section 5)."""

from __future__ import annotations

import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from interlock.adapters import registry as registry_mod
from interlock.adapters.registry import ToolRegistry, default_registry, tool
from interlock.core.errors import LoadError, ToolLoadError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "tools"


def _unique(prefix: str = "mod") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def _write_module(tmp_path: Path, body: str, name: str | None = None) -> Path:
    path = tmp_path / f"{name or _unique()}.py"
    path.write_text(textwrap.dedent(body))
    return path


# -- decorators and explicit registration ---------------------------------------


def test_module_level_decorators_register_into_the_default_registry() -> None:
    name = f"test.{uuid.uuid4().hex}"

    @tool(name)
    def live(x: int) -> dict:
        return {"x": x}

    @tool.dry_run(name)
    def preview(x: int) -> dict:
        return {"preview": x}

    assert default_registry.live(name) is live
    assert default_registry.dry_run(name) is preview
    assert name in default_registry.names()
    assert live(x=2) == {"x": 2}  # the decorator hands back the function unchanged


def test_bound_decorators_register_only_into_their_registry() -> None:
    reg = ToolRegistry()
    name = f"test.{uuid.uuid4().hex}"

    @reg.tool(name)
    def live() -> None:
        return None

    assert reg.live(name) is live
    assert reg.dry_run(name) is None
    assert default_registry.live(name) is None


def test_names_is_the_sorted_union_of_live_and_dry_run() -> None:
    reg = ToolRegistry()
    reg.register_live("b.tool", lambda: 1)
    reg.register_dry_run("a.tool", lambda: 2)
    reg.register_live("a.tool", lambda: 3)
    assert reg.names() == ("a.tool", "b.tool")


def test_bare_decorator_is_refused_with_a_hint() -> None:
    with pytest.raises(TypeError, match=r'@tool\("fs.write_file"\)'):
        @tool  # type: ignore[arg-type]
        def oops() -> None:
            return None


@pytest.mark.parametrize("bad", ["", "  x", "x ", 3, None, "fs.write_file [dry_run]"])
def test_bad_tool_names_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="tool name"):
        ToolRegistry().register_live(bad, lambda: None)  # type: ignore[arg-type]


def test_non_callable_is_refused() -> None:
    with pytest.raises(TypeError, match="must be callable"):
        ToolRegistry().register_live("x", 42)  # type: ignore[arg-type]


def test_two_different_implementations_for_one_name_are_an_error_naming_both() -> None:
    reg = ToolRegistry()

    def first() -> None:
        return None

    def second() -> None:
        return None

    reg.register_live("x.y", first)
    reg.register_live("x.y", first)  # the same one again is fine
    with pytest.raises(ToolLoadError, match=r"'x.y' has two different implementations: .*first.* and .*second"):
        reg.register_live("x.y", second)
    assert reg.live("x.y") is first
    reg.register_dry_run("x.y", second)  # live and dry run are separate tables


# -- load_module ----------------------------------------------------------------


def test_load_module_by_path_registers_into_the_given_registry(tmp_path: Path) -> None:
    name = f"t.{uuid.uuid4().hex[:8]}"
    path = _write_module(tmp_path, f"""
        from interlock.adapters.registry import tool

        @tool({name!r})
        def live(a):
            return {{"a": a}}

        @tool.dry_run({name!r})
        def dry(a):
            return {{"dry": a}}
    """)
    reg = ToolRegistry()
    labels = reg.load_module(str(path))
    assert labels == (name, f"{name} [dry_run]")
    assert reg.live(name)(a=1) == {"a": 1}
    assert reg.dry_run(name)(a=1) == {"dry": 1}


def test_a_module_imported_before_registers_again_into_another_registry(tmp_path: Path) -> None:
    name = f"t.{uuid.uuid4().hex[:8]}"
    path = _write_module(tmp_path, f"""
        from interlock.adapters.registry import tool

        @tool({name!r})
        def live():
            return 1
    """)
    first, second = ToolRegistry(), ToolRegistry()
    first.load_module(str(path))
    assert second.load_module(str(path)) == (name,)  # the module is cached; its tags are not lost
    assert second.live(name) is first.live(name)


def test_load_module_by_dotted_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    modname = _unique()
    _write_module(tmp_path, """
        from interlock.adapters.registry import tool

        @tool("dotted.tool")
        def live():
            return 1
    """, name=modname)
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = ToolRegistry()
    assert reg.load_module(modname) == ("dotted.tool",)


def test_a_dotted_name_is_also_looked_up_in_the_current_directory(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    modname = _unique()
    _write_module(tmp_path, """
        from interlock.adapters.registry import tool

        @tool("cwd.tool")
        def live():
            return 1
    """, name=modname)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    reg = ToolRegistry()
    assert reg.load_module(modname) == ("cwd.tool",)


def test_a_file_inside_a_package_keeps_its_relative_imports() -> None:
    reg = ToolRegistry()
    labels = reg.load_module(str(EXAMPLES / "release_tools.py"))
    assert "release.tag" in labels and "release.tag [dry_run]" in labels
    # It imports fs.restore_file (its changelog rollback) by name: that one comes
    # along; the fs tools it does not hold do not.
    assert "fs.restore_file" in labels and reg.live("fs.restore_file") is not None
    assert reg.live("fs.write_file") is None


def test_a_module_registers_the_same_tools_whether_or_not_it_was_imported_before() -> None:
    fresh, again = ToolRegistry(), ToolRegistry()
    first = fresh.load_module(str(EXAMPLES / "release_tools.py"))
    assert again.load_module(str(EXAMPLES / "release_tools.py")) == first
    assert fresh.names() == again.names()


def test_loading_does_not_touch_the_default_registry(tmp_path: Path) -> None:
    name = f"t.{uuid.uuid4().hex[:8]}"
    path = _write_module(tmp_path, f"""
        from interlock.adapters.registry import tool

        @tool({name!r})
        def live():
            return 1
    """)
    ToolRegistry().load_module(str(path))
    assert default_registry.live(name) is None


def test_loading_a_file_and_its_dotted_name_is_the_same_implementation(monkeypatch: pytest.MonkeyPatch) -> None:
    # Same source loaded under two module names runs the decorators twice; that
    # is not a conflict.
    monkeypatch.syspath_prepend(str(EXAMPLES.parents[1]))
    reg = ToolRegistry()
    reg.load_module(str(EXAMPLES / "fs_tools.py"))
    reg.load_module("examples.tools.fs_tools")
    assert reg.live("fs.write_file") is not None


@pytest.mark.parametrize("spec, expected", [
    ("does/not/exist.py", "no such file"),
    ("no_such_module_5f1d0c2a", "no such module"),  # fixed: xdist needs stable test ids
    ("not a module!", "expected a dotted module name"),
])
def test_unimportable_specs_are_load_errors_naming_them(spec: str, expected: str) -> None:
    with pytest.raises(LoadError) as info:
        ToolRegistry().load_module(spec)
    (problem,) = info.value.problems
    assert problem.file == spec
    assert expected in problem.message


def test_a_module_that_raises_on_import_is_a_load_error_with_the_line(tmp_path: Path) -> None:
    path = _write_module(tmp_path, """
        import os
        raise RuntimeError("needs a database")
    """)
    with pytest.raises(LoadError) as info:
        ToolRegistry().load_module(str(path))
    message = info.value.problems[0].message
    assert "RuntimeError: needs a database" in message
    assert f"{path}:3" in message


def test_a_module_with_a_syntax_error_is_a_load_error(tmp_path: Path) -> None:
    path = _write_module(tmp_path, "def broken(:\n")
    with pytest.raises(LoadError, match="SyntaxError"):
        ToolRegistry().load_module(str(path))


def test_a_module_importing_something_missing_says_what_is_missing(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    modname = _unique()
    _write_module(tmp_path, "import surely_not_installed_xyz\n", name=modname)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(LoadError, match="surely_not_installed_xyz"):
        ToolRegistry().load_module(modname)


@pytest.mark.parametrize("body", [
    "def helper():\n    return 1\n",
    # Decorated, but not held by the module: nothing a loader can find again.
    "from interlock.adapters.registry import tool\ntool('hidden.tool')(lambda: 1)\n",
])
def test_a_module_without_tools_is_a_load_error(tmp_path: Path, body: str) -> None:
    path = _write_module(tmp_path, body)
    with pytest.raises(LoadError, match="defines no tool"):
        ToolRegistry().load_module(str(path))


def test_a_file_whose_module_name_is_taken_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "json.py"  # the stdlib json is already imported
    path.write_text("from interlock.adapters.registry import tool\n")
    with pytest.raises(LoadError, match="already taken"):
        ToolRegistry().load_module(str(path))


def test_not_a_py_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tools.txt"
    path.write_text("")
    with pytest.raises(LoadError, match=r"expected a \.py file"):
        ToolRegistry().load_module(str(path))


def test_loading_targets_do_not_leak_out_of_load_module(tmp_path: Path) -> None:
    path = _write_module(tmp_path, """
        from interlock.adapters.registry import tool

        @tool("leak.check")
        def live():
            return 1
    """)
    ToolRegistry().load_module(str(path))
    assert registry_mod._loading_into.get() is None
