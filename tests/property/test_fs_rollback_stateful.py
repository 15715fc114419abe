"""The example fs tools against an oracle: rollbacks restore exactly (I7's premise).

A saga rolls back LIVE, reversible, succeeded calls in reverse completion
order (I7). That only undoes anything if each compensation puts back exactly
what its call replaced. Rules write random text (and sometimes fail, on a
path that escapes the sandbox) into a few files, some existing at the start
(with arbitrary bytes), some not; other rules roll back the most recent
write, or the whole saga. The model is the expected bytes of every file
(absent = None) and the stack of what each write replaced.

- After any sequence, the workspace holds exactly the model's bytes.
- Rolling back everything gives back the initial workspace, byte for byte,
  with files that did not exist removed again.
- A refused write changes nothing and leaves nothing to roll back.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from interlock.adapters.registry import ToolRegistry

TOOLS = Path(__file__).resolve().parents[2] / "examples" / "tools"
PATHS = ("a.txt", "b.txt", "sub/c.txt", "new.txt")
# The tools fsync what they write (a backup must survive a crash); on tmpfs that
# costs nothing, so the many examples stay fast. The integration tests use disk.
SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
REGISTRY = ToolRegistry()
REGISTRY.load_module(str(TOOLS / "fs_tools.py"))
WRITE, RESTORE = REGISTRY.live("fs.write_file"), REGISTRY.live("fs.restore_file")


class FsSagaMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="interlock-fs-", dir=SCRATCH))
        (self.root / "sub").mkdir()
        self._env = os.environ.get("INTERLOCK_WORKSPACE")
        os.environ["INTERLOCK_WORKSPACE"] = str(self.root)
        self.model: dict[str, bytes | None] = {p: None for p in PATHS}
        self.initial: dict[str, bytes | None] = {}
        self.saga: list[tuple[str, str, bytes | None]] = []  # (path, backup id, bytes it replaced)

    def teardown(self) -> None:
        if self._env is None:
            os.environ.pop("INTERLOCK_WORKSPACE", None)
        else:
            os.environ["INTERLOCK_WORKSPACE"] = self._env
        shutil.rmtree(self.root, ignore_errors=True)

    @initialize(a=st.none() | st.binary(max_size=20), b=st.none() | st.binary(max_size=20),
                c=st.none() | st.binary(max_size=20))
    def start(self, a: bytes | None, b: bytes | None, c: bytes | None) -> None:
        for path, data in zip(PATHS, (a, b, c)):
            if data is not None:
                (self.root / path).write_bytes(data)
            self.model[path] = data
        self.initial = dict(self.model)

    @rule(path=st.sampled_from(PATHS), text=st.text(max_size=20))
    def write(self, path: str, text: str) -> None:
        out = WRITE(path=path, content=text)
        assert out["written"] == len(text.encode())
        assert (out["backup"] == "") == (self.model[path] is None)
        self.saga.append((path, out["backup"], self.model[path]))
        self.model[path] = text.encode()

    @rule(text=st.text(max_size=5))
    def refused_write(self, text: str) -> None:
        try:
            WRITE(path="../escape.txt", content=text)
        except ValueError as exc:
            assert "escapes the workspace" in str(exc)
        else:
            raise AssertionError("a write outside the workspace was not refused")
        assert not (self.root.parent / "escape.txt").exists()

    @precondition(lambda self: self.saga)
    @rule()
    def roll_back_last(self) -> None:
        path, backup, previous = self.saga.pop()
        RESTORE(path=path, backup=backup)
        self.model[path] = previous

    @rule()
    def roll_back_all(self) -> None:
        while self.saga:
            self.roll_back_last()
        assert self.model == self.initial

    @invariant()
    def workspace_matches_the_model(self) -> None:
        for path, data in self.model.items():
            target = self.root / path
            if data is None:
                assert not target.exists(), path
            else:
                assert target.read_bytes() == data, path
        names = {p.name for p in self.root.iterdir()}
        assert not any(".interlock-tmp-" in n for n in names)  # no temp file left behind


TestFsSaga = FsSagaMachine.TestCase
