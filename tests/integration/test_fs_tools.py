"""The example toolsets against a real sandbox directory, directly and through the executor."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from interlock.adapters.executors import Executor, expand_template
from interlock.adapters.loading import read_document
from interlock.adapters.registry import ToolRegistry
from interlock.core.commands import Execute, Rollback
from interlock.core.convert import structure_catalog
from interlock.core.model import Mode

ROOT = Path(__file__).resolve().parents[2]
CATALOG_FILE = ROOT / "examples" / "fs" / "catalog.yaml"
TOOLS = ROOT / "examples" / "tools"


@pytest.fixture(scope="module")
def reg() -> ToolRegistry:
    reg = ToolRegistry()
    reg.load_module(str(TOOLS / "fs_tools.py"))
    reg.load_module(str(TOOLS / "release_tools.py"))
    return reg


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    monkeypatch.setenv("INTERLOCK_WORKSPACE", str(root))
    return root


def call(reg: ToolRegistry, name: str, **args: Any) -> Any:
    fn = reg.live(name)
    assert fn is not None, name
    return fn(**args)


def preview(reg: ToolRegistry, name: str, **args: Any) -> Any:
    fn = reg.dry_run(name)
    assert fn is not None, name
    return fn(**args)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".interlock-backups" not in p.parts}


# -- the sandbox --------------------------------------------------------------------


@pytest.mark.parametrize("path, message", [
    ("../x", "escapes the workspace"),
    ("a/../../x", "escapes the workspace"),
    ("/etc/passwd", "is absolute"),
    ("~/x", "is absolute"),
    (".", "escapes the workspace"),
    ("", "expected a relative path"),
    (".interlock-backups/abc", "backup store"),
])
def test_paths_outside_the_workspace_are_refused(reg: ToolRegistry, ws: Path, path: str, message: str) -> None:
    for name, args in (("fs.write_file", {"content": "x"}), ("fs.read_file", {}), ("fs.delete_file", {}),
                       ("fs.restore_file", {"backup": ""})):
        with pytest.raises(ValueError, match=message):
            call(reg, name, path=path, **args)
    assert list(ws.iterdir()) == []


def test_a_symlink_out_of_the_workspace_is_refused(reg: ToolRegistry, ws: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("keep")
    (ws / "link").symlink_to(outside, target_is_directory=True)
    (ws / "file-link").symlink_to(outside / "secret")
    for path in ("link/secret", "file-link", "link/new"):
        with pytest.raises(ValueError, match="escapes the workspace"):
            call(reg, "fs.write_file", path=path, content="pwned")
        with pytest.raises(ValueError, match="escapes the workspace"):
            call(reg, "fs.read_file", path=path)
        with pytest.raises(ValueError, match="escapes the workspace"):
            preview(reg, "fs.write_file", path=path, content="x")
    with pytest.raises(ValueError, match="escapes the workspace"):
        call(reg, "fs.delete_file", path="file-link")
    assert (outside / "secret").read_text() == "keep"
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]


def test_a_symlink_inside_the_workspace_is_followed(reg: ToolRegistry, ws: Path) -> None:
    (ws / "real").mkdir()
    (ws / "alias").symlink_to(ws / "real", target_is_directory=True)
    call(reg, "fs.write_file", path="alias/f.txt", content="ok")
    assert (ws / "real" / "f.txt").read_text() == "ok"


def test_live_tools_need_the_workspace_variable(reg: ToolRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTERLOCK_WORKSPACE", raising=False)
    with pytest.raises(ValueError, match="INTERLOCK_WORKSPACE is not set"):
        call(reg, "fs.write_file", path="a.txt", content="x")
    with pytest.raises(ValueError, match="INTERLOCK_WORKSPACE is not set"):
        call(reg, "release.tag", version="1.0.0")


def test_a_workspace_that_is_not_a_directory_is_refused(reg: ToolRegistry, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERLOCK_WORKSPACE", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="not an existing directory"):
        call(reg, "fs.read_file", path="a.txt")


# -- fs tools -----------------------------------------------------------------------


def test_write_then_restore_puts_back_the_exact_bytes(reg: ToolRegistry, ws: Path) -> None:
    original = b"\x00\xffnot utf-8\r\n"
    (ws / "data.bin").write_bytes(original)
    os.chmod(ws / "data.bin", 0o600)
    out = call(reg, "fs.write_file", path="data.bin", content="héllo")
    assert out["written"] == len("héllo".encode()) and len(out["backup"]) == 32
    assert (ws / "data.bin").read_text(encoding="utf-8") == "héllo"
    assert (ws / "data.bin").stat().st_mode & 0o777 == 0o600  # the mode survives the rewrite
    call(reg, "fs.restore_file", path="data.bin", backup=out["backup"])
    assert (ws / "data.bin").read_bytes() == original
    call(reg, "fs.restore_file", path="data.bin", backup=out["backup"])  # idempotent
    assert (ws / "data.bin").read_bytes() == original


def test_restoring_a_file_that_did_not_exist_deletes_it(reg: ToolRegistry, ws: Path) -> None:
    out = call(reg, "fs.write_file", path="new.txt", content="x")
    assert out["backup"] == ""
    assert call(reg, "fs.restore_file", path="new.txt", backup="") == {"restored": "new.txt", "deleted": True}
    assert not (ws / "new.txt").exists()
    assert call(reg, "fs.restore_file", path="new.txt", backup="")["deleted"] is False


@pytest.mark.parametrize("backup", ["../../etc/passwd", "0" * 31, "X" * 32])
def test_restore_refuses_backup_ids_it_did_not_make(reg: ToolRegistry, ws: Path, backup: str) -> None:
    with pytest.raises(ValueError, match="backup id"):
        call(reg, "fs.restore_file", path="a.txt", backup=backup)


def test_restore_of_an_unknown_backup_fails(reg: ToolRegistry, ws: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        call(reg, "fs.restore_file", path="a.txt", backup="0" * 32)


def test_write_needs_an_existing_directory(reg: ToolRegistry, ws: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        call(reg, "fs.write_file", path="no/such/dir.txt", content="x")
    assert snapshot(ws) == {}


def test_read_and_delete(reg: ToolRegistry, ws: Path) -> None:
    (ws / "a.txt").write_text("hello")
    assert call(reg, "fs.read_file", path="a.txt") == {"content": "hello"}
    assert call(reg, "fs.delete_file", path="a.txt") == {"deleted": "a.txt", "bytes": 5}
    assert not (ws / "a.txt").exists()
    with pytest.raises(FileNotFoundError, match="no such file in the workspace: a.txt"):
        call(reg, "fs.delete_file", path="a.txt")
    (ws / "d").mkdir()
    with pytest.raises(ValueError, match="not a regular file"):
        call(reg, "fs.delete_file", path="d")


def test_dry_runs_change_nothing_and_describe_the_change(reg: ToolRegistry, ws: Path) -> None:
    (ws / "a.txt").write_text("one\ntwo\n")
    before = snapshot(ws)
    p = preview(reg, "fs.write_file", path="a.txt", content="one\nthree\nfour\n")
    assert p == {"preview": True, "tool": "fs.write_file", "path": "a.txt", "bytes_after": 15, "existed": True,
                 "bytes_before": 8, "lines_added": 2, "lines_removed": 1}
    assert preview(reg, "fs.write_file", path="b.txt", content="x\ny")["existed"] is False
    assert preview(reg, "fs.delete_file", path="a.txt") == {
        "preview": True, "tool": "fs.delete_file", "path": "a.txt", "exists": True, "bytes": 8}
    assert preview(reg, "release.bump_version", version="1.0.0")["to"] == "1.0.0"
    assert snapshot(ws) == before
    assert not (ws / ".interlock-backups").exists()


def test_previews_work_without_a_workspace(reg: ToolRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTERLOCK_WORKSPACE", raising=False)
    assert "not set" in preview(reg, "fs.write_file", path="a.txt", content="x")["note"]
    assert "not set" in preview(reg, "release.tag", version="1.0.0")["note"]


# -- release tools ------------------------------------------------------------------


def test_bump_and_restore_version(reg: ToolRegistry, ws: Path) -> None:
    assert call(reg, "release.bump_version", version="1.0.0") == {"version": "1.0.0", "previous": ""}
    assert call(reg, "release.bump_version", version="1.1.0") == {"version": "1.1.0", "previous": "1.0.0"}
    call(reg, "release.restore_version", previous="1.0.0")
    assert (ws / "VERSION").read_text() == "1.0.0\n"
    call(reg, "release.restore_version", previous="")
    assert not (ws / "VERSION").exists()


def test_check_fails_with_a_clear_message(reg: ToolRegistry, ws: Path) -> None:
    with pytest.raises(RuntimeError, match="VERSION is missing, expected '1.0.0'"):
        call(reg, "release.check", expect="1.0.0")
    (ws / "VERSION").write_text("0.9.0\n")
    with pytest.raises(RuntimeError, match="VERSION is '0.9.0', expected '1.0.0'"):
        preview(reg, "release.check", expect="1.0.0")  # the dry run is the same read-only check
    assert call(reg, "release.check", expect="0.9.0") == {"version": "0.9.0", "ok": True}


def test_changelog_section_and_its_rollback(reg: ToolRegistry, ws: Path) -> None:
    (ws / "CHANGELOG.md").write_text("# Changelog\n\n## 0.9.0\n\nold\n")
    before = (ws / "CHANGELOG.md").read_bytes()
    out = call(reg, "release.write_changelog", version="1.0.0", notes="new things\n")
    text = (ws / "CHANGELOG.md").read_text()
    assert text == "# Changelog\n\n## 1.0.0\n\nnew things\n\n## 0.9.0\n\nold\n"
    with pytest.raises(RuntimeError, match="already has a section for 1.0.0"):
        call(reg, "release.write_changelog", version="1.0.0", notes="again")
    call(reg, "fs.restore_file", path=out["path"], backup=out["backup"])
    assert (ws / "CHANGELOG.md").read_bytes() == before


def test_tag_and_publish_refuse_to_repeat_or_skip_steps(reg: ToolRegistry, ws: Path) -> None:
    with pytest.raises(RuntimeError, match="VERSION is missing"):
        call(reg, "release.tag", version="1.0.0")
    call(reg, "release.bump_version", version="1.0.0")
    with pytest.raises(RuntimeError, match="not tagged"):
        call(reg, "release.publish", version="1.0.0")
    assert call(reg, "release.tag", version="1.0.0") == {"tag": "1.0.0"}
    assert preview(reg, "release.tag", version="1.0.0")["already_tagged"] is True
    with pytest.raises(RuntimeError, match="already exists"):
        call(reg, "release.tag", version="1.0.0")
    assert call(reg, "release.publish", version="1.0.0") == {"published": "1.0.0"}
    with pytest.raises(RuntimeError, match="already published"):
        call(reg, "release.publish", version="1.0.0")
    assert (ws / "TAGS").read_text() == "1.0.0\n" and (ws / "PUBLISHED").read_text() == "1.0.0\n"


# -- the catalog and the implementations agree ----------------------------------------


def test_the_catalog_loads_and_every_tool_is_implemented(reg: ToolRegistry) -> None:
    catalog = structure_catalog(read_document(CATALOG_FILE), str(CATALOG_FILE))
    names = {t.name for t in catalog.tools}
    assert names == {n for n in reg.names() if reg.live(n) is not None}
    for contract in catalog.tools:
        if contract.rollback is not None:
            assert contract.rollback.tool in names
            assert reg.live(contract.rollback.tool) is not None
    assert catalog.get("fs.write_file").conflicts_with == ("fs.delete_file",)
    assert catalog.get("fs.delete_file").conflicts_with == ("fs.write_file",)
    for irreversible in ("fs.delete_file", "release.tag", "release.publish"):
        assert catalog.get(irreversible).reversible is False
    assert {catalog.get(t).risk.value for t in ("release.tag", "release.publish")} == {"high"}


def test_write_and_rollback_through_the_executor(reg: ToolRegistry, ws: Path) -> None:
    """What the runner does: LIVE write, then the catalog's rollback with its args expanded."""
    catalog = structure_catalog(read_document(CATALOG_FILE), str(CATALOG_FILE))
    executor = Executor(reg, catalog)
    (ws / "conf.ini").write_bytes(b"a=1\n")
    write = catalog.get("fs.write_file")
    args = {"path": "conf.ini", "content": "a=2\n"}

    mock = asyncio.run(executor.execute(Execute("p/w", write.name, args, Mode.MOCK, 1, 5), write))
    dry = asyncio.run(executor.execute(Execute("p/w", write.name, args, Mode.DRY_RUN, 1, 5), write))
    assert mock.result == {"written": 0, "backup": ""} and dry.result["lines_added"] == 1
    assert (ws / "conf.ini").read_bytes() == b"a=1\n"  # neither touched the file

    live = asyncio.run(executor.execute(Execute("p/w", write.name, args, Mode.LIVE, 1, 5), write))
    assert live.ok and (ws / "conf.ini").read_bytes() == b"a=2\n"
    scope = {**args, **{f"result.{k}": v for k, v in live.result.items()}}
    rb_args = {k: expand_template(v, scope) for k, v in write.rollback.args.items()}
    restore = catalog.get(write.rollback.tool)
    done = asyncio.run(executor.rollback(Rollback("p/w", restore.name, rb_args, restore.timeout_s), restore))
    assert done.ok, done.error
    assert (ws / "conf.ini").read_bytes() == b"a=1\n"


def test_a_refused_path_is_a_failed_execution_not_a_crash(reg: ToolRegistry, ws: Path) -> None:
    catalog = structure_catalog(read_document(CATALOG_FILE), str(CATALOG_FILE))
    write = catalog.get("fs.write_file")
    cmd = Execute("p/w", write.name, {"path": "../evil", "content": "x"}, Mode.LIVE, 1, 5)
    result = asyncio.run(Executor(reg, catalog).execute(cmd, write))
    assert not result.ok and result.error.startswith("SandboxError: path '../evil' escapes the workspace")
