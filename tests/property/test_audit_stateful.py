"""I10, stateful: an honest writer appends to the transition log while an
attacker edits, inserts, deletes, swaps, duplicates, truncates and forges; the
verifier must flag every difference from what was written, at the line where
it starts, and never flag an untouched log.

The oracle is deliberately simple: the bytes the honest writer produced
(``pristine``) and the head it stored. Any tampering is "the file differs from
pristine"; the first bad line is the pristine line holding the first differing
byte. One exception is known and modelled: a *forged* record (rehashed by the
attacker so it is internally valid) can only be caught by its successor (the
next record's ``prev_hash``, or the stored head), i.e. one line later.
"""

from __future__ import annotations

import json

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from interlock.core.audit import (
    GENESIS,
    canonical_json,
    chain_lines,
    link_hash,
    log_text,
    transition_line,
    verify_log_bytes,
)
from interlock.core.controller.states import TRIGGERS, State
from interlock.core.records import TransitionRecord

#: Values that stress the canonical text: escapes, non-ASCII, line separators
#: inside strings, exponents, negative zero, big integers. A palette keeps
#: the number of choices per record small (the deep profile runs 2000 x 100 steps).
_PALETTE = [None, True, 0, -1, 2**63, 1e20, 1e-7, -0.0, 0.1, "", "a\"b\\c", "é☃", "\u2028x\n", "\x00\r\t"]
records = st.tuples(
    st.sampled_from(["p1/a", "p1/b", "p2/c", "ünï/☃"]),
    st.sampled_from([s.value for s in State]),
    st.sampled_from(TRIGGERS),
    st.sampled_from([s.value for s in State]),
    st.floats(min_value=0, max_value=1e20, allow_nan=False),
    st.sampled_from(["r", "threshold.low.live", "ü\"\\"]),
    st.dictionaries(st.sampled_from(["k", "é", "\u2028"]), st.sampled_from(_PALETTE), max_size=2),
)


def first_difference(a: bytes, b: bytes) -> int:
    """Length of the common prefix of a and b (binary search on slice equality)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


class TamperedLog(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.pristine = b""  # what the honest writer wrote
        self.current = b""  # what is on disk
        self.count, self.head_hash = 0, GENESIS  # the head stored outside the log
        self.forged = False

    # -- the honest writer ---------------------------------------------------

    @precondition(lambda self: self.count < 48)  # long enough for every tampering, cheap to verify
    @rule(batch=st.lists(records, min_size=1, max_size=4))
    def append(self, batch):
        lines = [
            transition_line(TransitionRecord(
                seq=self.count + k, time=time, machine="call", call_id=call, plan_id=call.split("/")[0],
                agent_id="agent", src=src, trigger=trigger, dst=dst, rule=rule, detail=detail,
            ), "run")
            for k, (call, src, trigger, dst, time, rule, detail) in enumerate(batch)
        ]
        chained = chain_lines(lines, prev_hash=self.head_hash)
        data = log_text(chained).encode("utf-8")
        self.pristine += data
        self.current += data  # appended to whatever is on disk now
        self.count += len(chained)
        self.head_hash = chained[-1]["hash"]

    @rule()
    def restore_backup(self):
        self.current = self.pristine
        self.forged = False

    # -- the attacker ----------------------------------------------------------

    def _lines(self) -> list[bytes]:
        return self.current.splitlines(keepends=True)

    @precondition(lambda self: self.current)
    @rule(pos=st.integers(min_value=0), value=st.integers(0, 255))
    def edit_byte(self, pos, value):
        pos %= len(self.current)
        if self.current[pos] == value:
            value = (value + 1) % 256
        self.current = self.current[:pos] + bytes([value]) + self.current[pos + 1:]

    @precondition(lambda self: self.current)
    @rule(pos=st.integers(min_value=0))
    def delete_byte(self, pos):
        pos %= len(self.current)
        self.current = self.current[:pos] + self.current[pos + 1:]

    @rule(pos=st.integers(min_value=0), value=st.integers(0, 255))
    def insert_byte(self, pos, value):
        pos %= len(self.current) + 1
        self.current = self.current[:pos] + bytes([value]) + self.current[pos:]

    @precondition(lambda self: len(self.current.splitlines()) >= 2)
    @rule(i=st.integers(min_value=0), j=st.integers(min_value=0))
    def swap_lines(self, i, j):
        lines = self._lines()
        i, j = i % len(lines), j % len(lines)
        lines[i], lines[j] = lines[j], lines[i]
        self.current = b"".join(lines)

    @precondition(lambda self: self.current)
    @rule(i=st.integers(min_value=0))
    def delete_line(self, i):
        lines = self._lines()
        del lines[i % len(lines)]
        self.current = b"".join(lines)

    @precondition(lambda self: self.current)
    @rule(i=st.integers(min_value=0))
    def duplicate_line(self, i):
        lines = self._lines()
        i %= len(lines)
        # a replayed copy goes in before the original, newline-terminated: an unterminated
        # last line copied after itself would merge into one line and double every time
        lines.insert(i, lines[i] if lines[i].endswith(b"\n") else lines[i] + b"\n")
        self.current = b"".join(lines)

    @precondition(lambda self: self.current)
    @rule(keep=st.integers(min_value=0))
    def truncate(self, keep):
        self.current = self.current[: keep % len(self.current)]

    @precondition(lambda self: self.current and self.current == self.pristine)
    @rule(i=st.integers(min_value=0), rule_text=st.text(min_size=1, max_size=10))
    def forge_record(self, i, rule_text):
        """Rewrite one record and rehash it, keeping its seq and prev_hash: valid on its own."""
        lines = self._lines()
        i %= len(lines)
        rec = json.loads(lines[i])
        rec["rule"] = rec["rule"] + rule_text
        rec["hash"] = link_hash(rec["prev_hash"], rec)
        lines[i] = (canonical_json(rec) + "\n").encode("utf-8")
        self.current = b"".join(lines)
        self.forged = True

    # -- the verifier against the oracle -------------------------------------

    @invariant()
    def verifier_agrees_with_the_oracle(self):
        check = verify_log_bytes(self.current, (self.count, self.head_hash))
        if self.current == self.pristine:
            assert check.ok, check
            assert (check.records, check.head_hash) == (self.count, self.head_hash)
            return
        assert not check.ok, "tampering went unnoticed"
        first_bad_line = self.pristine[: first_difference(self.current, self.pristine)].count(b"\n")
        if self.forged:
            assert first_bad_line <= check.first_bad <= first_bad_line + 1, (first_bad_line, check)
        else:
            assert check.first_bad == first_bad_line, (first_bad_line, check)
        assert check.records <= check.first_bad  # only lines before the bad one are vouched for


TestTamperedLog = TamperedLog.TestCase
