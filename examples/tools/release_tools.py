"""A shell-free "release" toolset over files in the same sandbox as ``fs_tools``.

The release is four files in ``$INTERLOCK_WORKSPACE``: ``VERSION`` (the current
version), ``CHANGELOG.md``, ``TAGS`` (one tag per line) and ``PUBLISHED`` (one
published version per line). Bumping and the changelog are reversible (the
catalog's rollbacks undo them); tagging and publishing are not, and both refuse
to do the same thing twice. ``release.check`` fails when VERSION is not what
the plan expects: the demo uses it to show a saga rollback.
"""

from __future__ import annotations

import os
from pathlib import Path

from interlock.adapters.registry import tool

from .fs_tools import WORKSPACE_ENV, atomic_write, back_up, preview_root, resolve, workspace_root
from .fs_tools import restore_file  # noqa: F401  release.write_changelog is undone by fs.restore_file

VERSION, CHANGELOG, TAGS, PUBLISHED = "VERSION", "CHANGELOG.md", "TAGS", "PUBLISHED"


class ReleaseCheckFailed(RuntimeError):
    """The workspace is not in the state the release plan expects."""


# -- LIVE ----------------------------------------------------------------------


@tool("release.bump_version")
def bump_version(version: str) -> dict:
    """Write VERSION; returns the previous version ("" when there was none) for the rollback."""
    root = workspace_root()
    target = resolve(VERSION, root)
    previous = _read_version(target)
    atomic_write(target, f"{version}\n".encode())
    return {"version": version, "previous": previous or ""}


@tool("release.restore_version")
def restore_version(previous: str) -> dict:
    """Undo ``bump_version``: put ``previous`` back, or remove VERSION if it was ""."""
    root = workspace_root()
    target = resolve(VERSION, root)
    if previous == "":
        target.unlink(missing_ok=True)
        return {"version": "", "deleted": True}
    atomic_write(target, f"{previous}\n".encode())
    return {"version": previous}


@tool("release.check")
def check(expect: str) -> dict:
    """Read-only: fail unless VERSION holds ``expect``. Its dry run is itself."""
    actual = _read_version(resolve(VERSION, workspace_root()))
    if actual != expect:
        shown = "missing" if actual is None else repr(actual)
        raise ReleaseCheckFailed(f"VERSION is {shown}, expected {expect!r}")
    return {"version": actual, "ok": True}


tool.dry_run("release.check")(check)


@tool("release.write_changelog")
def write_changelog(version: str, notes: str) -> dict:
    """Add a section for ``version`` at the top; undone by fs.restore_file with the backup."""
    root = workspace_root()
    target = resolve(CHANGELOG, root)
    old = target.read_text(encoding="utf-8") if target.is_file() else ""
    if _has_section(old, version):
        raise ReleaseCheckFailed(f"{CHANGELOG} already has a section for {version}")
    backup = back_up(target, root)
    data = _with_section(old, version, notes).encode("utf-8")
    atomic_write(target, data)
    return {"written": len(data), "backup": backup, "path": CHANGELOG}


@tool("release.tag")
def tag(version: str) -> dict:
    """Irreversible: append ``version`` to TAGS. Refuses a version that is not
    the current VERSION, and a tag that already exists."""
    root = workspace_root()
    current = _read_version(resolve(VERSION, root))
    if current != version:
        raise ReleaseCheckFailed(f"refusing to tag {version}: VERSION is {current or 'missing'}")
    tags = resolve(TAGS, root)
    if version in _lines(tags):
        raise ReleaseCheckFailed(f"tag {version} already exists in {TAGS}")
    _append_line(tags, version)
    return {"tag": version}


@tool("release.publish")
def publish(version: str) -> dict:
    """Irreversible: record ``version`` in PUBLISHED. Needs the tag; never twice."""
    root = workspace_root()
    if version not in _lines(resolve(TAGS, root)):
        raise ReleaseCheckFailed(f"refusing to publish {version}: it is not tagged in {TAGS}")
    published = resolve(PUBLISHED, root)
    if version in _lines(published):
        raise ReleaseCheckFailed(f"{version} is already published")
    _append_line(published, version)
    return {"published": version}


# -- DRY_RUN (reads only) --------------------------------------------------------


@tool.dry_run("release.bump_version")
def preview_bump_version(version: str) -> dict:
    root = preview_root()
    previous = None if root is None else _read_version(resolve(VERSION, root))
    return {"preview": True, "tool": "release.bump_version", "from": previous or "", "to": version}


@tool.dry_run("release.write_changelog")
def preview_write_changelog(version: str, notes: str) -> dict:
    root = preview_root()
    old = ""
    if root is not None:
        target = resolve(CHANGELOG, root)
        old = target.read_text(encoding="utf-8") if target.is_file() else ""
    added = len(_with_section(old, version, notes).splitlines()) - len(old.splitlines())
    return {"preview": True, "tool": "release.write_changelog", "path": CHANGELOG, "lines_added": added,
            "already_has_section": _has_section(old, version)}


@tool.dry_run("release.tag")
def preview_tag(version: str) -> dict:
    root = preview_root()
    if root is None:
        return {"preview": True, "tool": "release.tag", "tag": version, "note": f"{WORKSPACE_ENV} is not set"}
    current = _read_version(resolve(VERSION, root))
    return {"preview": True, "tool": "release.tag", "tag": version, "version_matches": current == version,
            "already_tagged": version in _lines(resolve(TAGS, root))}


@tool.dry_run("release.publish")
def preview_publish(version: str) -> dict:
    root = preview_root()
    if root is None:
        return {"preview": True, "tool": "release.publish", "version": version, "note": f"{WORKSPACE_ENV} is not set"}
    return {"preview": True, "tool": "release.publish", "version": version,
            "tagged": version in _lines(resolve(TAGS, root)),
            "already_published": version in _lines(resolve(PUBLISHED, root))}


# -- helpers -------------------------------------------------------------------


def _read_version(target: Path) -> str | None:
    return target.read_text(encoding="utf-8").strip() if target.is_file() else None


def _lines(target: Path) -> list[str]:
    return [line.strip() for line in target.read_text(encoding="utf-8").splitlines()] if target.is_file() else []


def _append_line(target: Path, line: str) -> None:
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(target, flags, 0o644)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _has_section(text: str, version: str) -> bool:
    return any(line.strip() == f"## {version}" for line in text.splitlines())


def _with_section(old: str, version: str, notes: str) -> str:
    """Insert ``## version`` after the title (a first ``# `` line) or at the top."""
    section = f"## {version}\n\n{notes.strip()}\n\n"
    if old.startswith("# "):
        title, _, rest = old.partition("\n")
        return f"{title}\n\n{section}{rest.lstrip(chr(10))}"
    return section + old
