"""Workspace filesystem tools, confined to a sandbox directory.

The sandbox root is the directory named by the ``INTERLOCK_WORKSPACE``
environment variable. Every path is relative to it and is refused if it
escapes it (``..``, an absolute path, a symlink pointing outside) or reaches
into the backup store. ``fs.write_file`` keeps the previous content under
``<root>/.interlock-backups/<id>`` so ``fs.restore_file`` can undo it (the
catalog's rollback). Load with ``interlock run --tools examples/tools/fs_tools.py``.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import hashlib
import uuid
from pathlib import Path

from interlock.adapters.registry import tool

WORKSPACE_ENV = "INTERLOCK_WORKSPACE"
BACKUP_DIR = ".interlock-backups"
_BACKUP_ID = re.compile(r"[0-9a-f]{32}")


class SandboxError(ValueError):
    """A path or workspace the tools refuse to touch."""


# -- the sandbox ---------------------------------------------------------------


def workspace_root() -> Path:
    """The sandbox root: ``$INTERLOCK_WORKSPACE``, which must be an existing directory."""
    raw = os.environ.get(WORKSPACE_ENV, "")
    if not raw:
        raise SandboxError(f"{WORKSPACE_ENV} is not set; set it to the directory these tools may change")
    root = Path(raw).expanduser()
    if not root.is_dir():
        raise SandboxError(f"{WORKSPACE_ENV}={raw!r} is not an existing directory")
    return root.resolve()


def resolve(path: str, root: Path | None = None) -> Path:
    """``path`` inside the sandbox, with symlinks resolved; refused if it leaves it."""
    root = workspace_root() if root is None else root
    if not isinstance(path, str) or not path or "\x00" in path:
        raise SandboxError(f"expected a relative path inside the workspace, got {path!r}")
    if os.path.isabs(path) or path.startswith("~"):
        raise SandboxError(f"path {path!r} is absolute; paths are relative to the workspace {root}")
    target = (root / path).resolve()
    if target == root or root not in target.parents:
        raise SandboxError(f"path {path!r} escapes the workspace {root} (it resolves to {target})")
    if target.relative_to(root).parts[0] == BACKUP_DIR:
        raise SandboxError(f"path {path!r} is inside the backup store {BACKUP_DIR}/; it is off limits")
    return target


def _existing_file(path: str, root: Path) -> Path:
    target = resolve(path, root)
    if not target.exists():
        raise FileNotFoundError(f"no such file in the workspace: {path}")
    if not target.is_file():
        raise SandboxError(f"{path!r} is not a regular file")
    return target


def atomic_write(target: Path, data: bytes) -> None:
    """Replace ``target`` with ``data`` all at once (temp file + rename); keeps its mode."""
    if not target.parent.is_dir():
        raise FileNotFoundError(f"the directory of {target.name!r} does not exist in the workspace")
    tmp = target.with_name(f".{target.name}.interlock-tmp-{uuid.uuid4().hex}")
    # O_EXCL|O_NOFOLLOW: never write through a symlink planted at the temp name.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if target.is_file():
            shutil.copymode(target, tmp)
        os.replace(tmp, target)  # replaces a symlink itself, never its target
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def back_up(target: Path, root: Path) -> str:
    """Save ``target``'s current bytes; returns the backup id, or "" if it did not exist."""
    if not target.exists():
        return ""
    if not target.is_file():
        raise SandboxError(f"{target.relative_to(root)} is not a regular file")
    store = root / BACKUP_DIR
    store.mkdir(exist_ok=True)
    # Named by content (path + bytes): the same saved state always gets the same
    # id, so a deterministic run (--fake-clock --seed) gives byte-identical logs.
    data = target.read_bytes()
    rel = target.relative_to(root).as_posix().encode()
    backup = hashlib.sha256(rel + b"\0" + data).hexdigest()[:32]
    if not (store / backup).exists():
        atomic_write(store / backup, data)
    return backup


def restore(target: Path, backup: str, root: Path) -> dict:
    """Put back the bytes saved as ``backup``; "" means the file did not exist: delete it."""
    if backup == "":
        existed = target.exists()
        if existed:
            if not target.is_file():
                raise SandboxError(f"{target.relative_to(root)} is not a regular file")
            target.unlink()
        return {"restored": str(target.relative_to(root)), "deleted": existed}
    if not isinstance(backup, str) or not _BACKUP_ID.fullmatch(backup):
        raise SandboxError(f"backup id {backup!r} is not one this tool made (32 hex digits, or \"\")")
    saved = root / BACKUP_DIR / backup
    if not saved.is_file():
        raise FileNotFoundError(f"backup {backup} does not exist in {root / BACKUP_DIR}")
    data = saved.read_bytes()
    atomic_write(target, data)
    return {"restored": str(target.relative_to(root)), "bytes": len(data)}


# -- LIVE ----------------------------------------------------------------------


@tool("fs.read_file")
def read_file(path: str) -> dict:
    root = workspace_root()
    return {"content": _existing_file(path, root).read_text(encoding="utf-8")}


@tool("fs.write_file")
def write_file(path: str, content: str) -> dict:
    root = workspace_root()
    target = resolve(path, root)
    data = content.encode("utf-8")
    backup = back_up(target, root)
    atomic_write(target, data)
    return {"written": len(data), "backup": backup}


@tool("fs.restore_file")
def restore_file(path: str, backup: str) -> dict:
    root = workspace_root()
    return restore(resolve(path, root), backup, root)


@tool("fs.delete_file")
def delete_file(path: str) -> dict:
    root = workspace_root()
    target = _existing_file(path, root)
    size = target.stat().st_size
    target.unlink()
    return {"deleted": path, "bytes": size}


# -- DRY_RUN (reads only) --------------------------------------------------------


@tool.dry_run("fs.write_file")
def preview_write_file(path: str, content: str) -> dict:
    root = preview_root()
    preview = {"preview": True, "tool": "fs.write_file", "path": path, "bytes_after": len(content.encode("utf-8"))}
    if root is None:
        return {**preview, "note": f"{WORKSPACE_ENV} is not set; the workspace was not inspected"}
    target = resolve(path, root)
    if not target.is_file():
        return {**preview, "existed": False, "bytes_before": 0, "lines_added": len(content.splitlines()),
                "lines_removed": 0}
    old = target.read_text(encoding="utf-8", errors="replace")
    added, removed = _diff_size(old, content)
    return {**preview, "existed": True, "bytes_before": target.stat().st_size, "lines_added": added,
            "lines_removed": removed}


@tool.dry_run("fs.delete_file")
def preview_delete_file(path: str) -> dict:
    root = preview_root()
    preview = {"preview": True, "tool": "fs.delete_file", "path": path}
    if root is None:
        return {**preview, "note": f"{WORKSPACE_ENV} is not set; the workspace was not inspected"}
    target = resolve(path, root)
    exists = target.is_file()
    return {**preview, "exists": exists, "bytes": target.stat().st_size if exists else 0}


def preview_root() -> Path | None:
    """A preview works without a workspace (it says so); a bad path is still refused."""
    return workspace_root() if os.environ.get(WORKSPACE_ENV) else None


def _diff_size(old: str, new: str) -> tuple[int, int]:
    added = removed = 0
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0):
        if line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return added, removed
