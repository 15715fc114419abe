"""Tools from installed packages: the ``interlock.tools`` entry-point group (SPEC section 5).

Each test puts a real distribution on ``sys.path`` (a ``*.dist-info`` directory
with METADATA and entry_points.txt, as pip would install it) so that
``importlib.metadata`` finds it exactly as it finds installed packages.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from interlock.adapters.executors import Executor
from interlock.adapters.registry import ToolRegistry
from interlock.core.commands import Execute
from interlock.core.errors import ToolLoadError
from interlock.core.model import Mode, Risk, ToolContract


def install(site: Path, dist: str, entry_points: str, modules: dict[str, str]) -> None:
    """Lay out an installed distribution ``dist`` 0.1 in ``site``."""
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    for name, body in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(body))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    return site


def _mod() -> str:
    return f"demo_tools_{uuid.uuid4().hex[:10]}"


def test_live_and_dry_run_entry_points_are_found(site: Path) -> None:
    mod = _mod()
    install(site, "demo-tools", f"""
        [interlock.tools]
        demo.echo = {mod}:echo
        demo.echo [dry_run] = {mod}:preview_echo
        demo.shout = {mod}:Shout
    """, {mod: """
        calls = []

        def echo(text):
            calls.append(text)
            return {"echo": text}

        def preview_echo(text):
            return {"preview": True, "would_echo": text}

        class Shout:
            def __init__(self, text):
                self.text = text.upper()
    """})
    reg = ToolRegistry()
    loaded = reg.load_entry_points()
    assert {"demo.echo", "demo.echo [dry_run]", "demo.shout"} <= set(loaded)
    assert reg.live("demo.echo")(text="hi") == {"echo": "hi"}
    assert reg.dry_run("demo.echo")(text="hi") == {"preview": True, "would_echo": "hi"}
    assert reg.dry_run("demo.shout") is None
    assert "distribution 'demo-tools'" in reg.origin("demo.echo")
    assert sys.modules[mod].calls == ["hi"]

    # The executor uses them by mode: the dry run never reaches the LIVE one.
    contract = ToolContract(name="demo.echo", risk=Risk.LOW, supports_dry_run=True, mock_result={"echo": ""})
    ex = Executor(reg)
    dry = asyncio.run(ex.execute(Execute("p/s", "demo.echo", {"text": "x"}, Mode.DRY_RUN, 1, 5), contract))
    assert dry.result == {"preview": True, "would_echo": "x"}
    assert sys.modules[mod].calls == ["hi"]
    live = asyncio.run(ex.execute(Execute("p/s", "demo.echo", {"text": "x"}, Mode.LIVE, 1, 5), contract))
    assert live.result == {"echo": "x"} and sys.modules[mod].calls == ["hi", "x"]


def test_other_groups_are_not_loaded(site: Path) -> None:
    mod = _mod()
    install(site, "other-plugin", f"""
        [console_scripts]
        demo.not_a_tool = {mod}:main
    """, {mod: "def main():\n    return 0\n"})
    reg = ToolRegistry()
    reg.load_entry_points()
    assert reg.live("demo.not_a_tool") is None


def test_a_module_using_the_decorator_and_an_entry_point_agree(site: Path) -> None:
    mod = _mod()
    install(site, "decorated-tools", f"""
        [interlock.tools]
        deco.tool = {mod}:live
    """, {mod: """
        from interlock.adapters.registry import tool

        @tool("deco.tool")
        def live():
            return 1
    """})
    reg = ToolRegistry()
    reg.load_entry_points()  # the decorator registers the same function: no conflict
    assert reg.live("deco.tool")() == 1


@pytest.mark.parametrize("target, body, expected", [
    ("{mod}:missing", "x = 1\n", "AttributeError"),
    ("{mod}:x", "x = 1\n", "is not callable"),
    ("{mod}:f", "raise ImportError('needs libfoo')\n", "ImportError: needs libfoo"),
    ("no_such_module_xyz_123:f", "", "ModuleNotFoundError"),
])
def test_a_broken_entry_point_names_its_distribution_and_entry_point(site: Path, target: str, body: str,
                                                                     expected: str) -> None:
    mod = _mod()
    install(site, "broken-tools", f"""
        [interlock.tools]
        broken.tool = {target.format(mod=mod)}
    """, {mod: body})
    with pytest.raises(ToolLoadError) as info:
        ToolRegistry().load_entry_points()
    message = str(info.value)
    assert "entry point 'broken.tool'" in message
    assert "distribution 'broken-tools'" in message
    assert "group 'interlock.tools'" in message
    assert expected in message


def test_two_distributions_implementing_one_tool_is_an_error(site: Path) -> None:
    first, second = _mod(), _mod()
    install(site, "tools-a", f"[interlock.tools]\nsame.tool = {first}:f\n", {first: "def f():\n    return 'a'\n"})
    install(site, "tools-b", f"[interlock.tools]\nsame.tool = {second}:f\n", {second: "def f():\n    return 'b'\n"})
    with pytest.raises(ToolLoadError, match=r"'same.tool' has two different implementations.*tools-(a|b).*tools-(a|b)"):
        ToolRegistry().load_entry_points()


def test_loading_twice_is_harmless(site: Path) -> None:
    mod = _mod()
    install(site, "twice-tools", f"[interlock.tools]\nt.once = {mod}:f\n", {mod: "def f():\n    return 1\n"})
    reg = ToolRegistry()
    reg.load_entry_points()
    reg.load_entry_points()
    assert reg.live("t.once")() == 1
