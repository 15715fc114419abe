"""The tamper-evident hash chain of the transition log (SPEC section 8, I10).

``hash = sha256(prev_hash + canonical_json(record without hash fields))``.
The first record's ``prev_hash`` is ``GENESIS``. The head (last hash and
count) is kept outside the log (summary, store ``runs`` row) so truncation
is detectable too.

Every line of the log is written as exactly ``canonical_json(record)``, so
the verifier can also demand byte-exact canonical text: an edit that keeps
the parsed value (``1e+16`` -> ``1E+16``, an added space) is still an edit,
and every single-byte change is caught at the line it touches.
"""

from __future__ import annotations

import enum
import hashlib
import json
from typing import Any, Sequence

import attrs

from interlock.core.records import TransitionRecord

GENESIS = "0" * 64

#: Field order of one line of execution_state_transitions.jsonl (the hash covers
#: every field but the last two).
TRANSITION_FIELDS: tuple[str, ...] = (
    "schema_version", "run_id", "seq", "time", "machine", "call_id", "plan_id", "agent_id",
    "from", "trigger", "to", "rule", "detail", "prev_hash", "hash",
)


def canonical_json(obj: Any) -> str:
    """Stable text for hashing: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def link_hash(prev_hash: str, record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k not in ("prev_hash", "hash")}
    return hashlib.sha256((prev_hash + canonical_json(body)).encode("utf-8")).hexdigest()


def _text(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def transition_line(rec: TransitionRecord, run_id: str) -> dict[str, Any]:
    """One log line (without hashes) for a transition record: ``src``/``dst`` become ``from``/``to``."""
    return {
        "schema_version": 1,
        "run_id": run_id,
        "seq": rec.seq,
        "time": rec.time,
        "machine": _text(rec.machine),
        "call_id": rec.call_id,
        "plan_id": rec.plan_id,
        "agent_id": rec.agent_id,
        "from": _text(rec.src),
        "trigger": _text(rec.trigger),
        "to": _text(rec.dst),
        "rule": rec.rule,
        "detail": dict(rec.detail),
    }


def chain_lines(lines: Sequence[dict[str, Any]], prev_hash: str = GENESIS) -> list[dict[str, Any]]:
    """Copies of ``lines`` with ``prev_hash``/``hash`` linked in order.

    ``prev_hash`` continues an existing chain (its head hash); a new log starts at GENESIS.
    """
    out: list[dict[str, Any]] = []
    for line in lines:
        body = {k: v for k, v in line.items() if k not in ("prev_hash", "hash")}
        h = link_hash(prev_hash, body)
        out.append({**body, "prev_hash": prev_hash, "hash": h})
        prev_hash = h
    return out


def chain_head(chained: Sequence[dict[str, Any]]) -> tuple[int, str]:
    """``(count, head_hash)`` of a chained log: what is stored outside the log."""
    return (len(chained), chained[-1]["hash"] if chained else GENESIS)


@attrs.frozen
class ChainCheck:
    """The verdict on one log.

    ``records`` and ``head_hash`` describe the verified prefix (all of the log when
    ``ok``); ``first_bad`` is the 0-based line index of the first bad (or missing)
    record and ``seq`` the seq found or expected there, ``None`` when unknown.
    """

    ok: bool
    records: int
    head_hash: str
    first_bad: int | None = None
    problem: str = ""
    seq: int | None = None


def _parse_line(index: int, line: str) -> tuple[dict[str, Any] | None, str]:
    """The record of one text line, or a problem naming the (1-based) line."""
    where = f"line {index + 1}"
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return None, f"{where} is not valid UTF-8"
    if not line.strip():
        return None, f"{where} is empty"
    try:
        rec = json.loads(line)
    except ValueError as exc:
        return None, f"{where} is not valid JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(rec, dict):
        return None, f"{where} is not a JSON object"
    try:
        canonical = canonical_json(rec)
    except ValueError:
        return None, f"{where} holds a value JSON does not allow (NaN or Infinity)"
    if canonical != line:
        return rec, f"{where} is not in the canonical form it was written in: the text was edited"
    return rec, ""


def _int_seq(rec: dict[str, Any]) -> int | None:
    seq = rec.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def verify_chain(
    lines: Sequence[dict[str, Any]] | Sequence[str],
    head: tuple[int, str] | None = None,
) -> ChainCheck:
    """Check a transition log: every record intact, in order, none missing.

    ``lines`` are parsed records (from a store) or text lines (from the JSONL
    file, without their newline; then each must be the canonical JSON it was
    written as). ``head`` is ``(count, head_hash)`` kept outside the log; without
    it a log cut at a record boundary cannot be told from a shorter one.
    Stops at the first bad record.
    """
    prev = GENESIS
    for i, line in enumerate(lines):
        if isinstance(line, str):
            rec, problem = _parse_line(i, line)
            if problem:
                return ChainCheck(False, i, prev, i, problem, _int_seq(rec) if rec else None)
        else:
            rec = line
        assert rec is not None
        seq = _int_seq(rec)
        missing = [k for k in ("seq", "prev_hash", "hash") if k not in rec]
        if missing:
            return ChainCheck(False, i, prev, i, f"record lacks {', '.join(missing)}", seq)
        if seq is None:
            return ChainCheck(False, i, prev, i, f"seq {rec['seq']!r} is not an integer", None)
        if not isinstance(rec["hash"], str) or not isinstance(rec["prev_hash"], str):
            return ChainCheck(False, i, prev, i, "prev_hash/hash are not strings", seq)
        if link_hash(rec["prev_hash"], rec) != rec["hash"]:
            return ChainCheck(False, i, prev, i, "hash mismatch: the record was edited", seq)
        if seq != i:
            return ChainCheck(
                False, i, prev, i,
                f"seq {seq} where seq {i} belongs: records were reordered, deleted or inserted", seq,
            )
        if rec["prev_hash"] != prev:
            return ChainCheck(
                False, i, prev, i,
                "prev_hash is not the previous record's hash: the chain was broken "
                "(records reordered, deleted or replaced)", seq,
            )
        prev = rec["hash"]
    n = len(lines)
    if head is not None:
        count, head_hash = head
        if n < count:
            return ChainCheck(
                False, n, prev, n,
                f"missing: the log ends after {n} records but its stored head says {count}: truncated", n,
            )
        if n > count:
            return ChainCheck(
                False, count, _hash_at(lines, count), count,
                f"extra: the stored head says {count} records but the log has {n}: records were appended",
                count,
            )
        if prev != head_hash:
            last = max(n - 1, 0)
            return ChainCheck(
                False, last, _hash_at(lines, last), last,
                f"head hash {prev[:12]}... differs from the stored head {head_hash[:12]}...: "
                "the log was rewritten", last if n else None,
            )
    return ChainCheck(True, n, prev)


def _hash_at(lines: Sequence[dict[str, Any]] | Sequence[str], count: int) -> str:
    """Hash of the record before index ``count`` (lines up to it are already verified)."""
    if count == 0:
        return GENESIS
    line = lines[count - 1]
    rec = json.loads(line) if isinstance(line, str) else line
    return rec["hash"]


def verify_log_bytes(data: bytes, head: tuple[int, str] | None = None) -> ChainCheck:
    """Check the bytes of an execution_state_transitions.jsonl file.

    Every line must end with a newline (a missing one means a cut or edited
    file); bytes that are not UTF-8 make their line fail, not the whole file.
    """
    if not data:
        return verify_chain([], head)
    text = data.decode("utf-8", errors="surrogateescape")
    pieces = text.split("\n")
    unterminated = pieces[-1] != ""
    lines = pieces if unterminated else pieces[:-1]
    check = verify_chain(lines[:-1] if unterminated else lines, None if unterminated else head)
    if not check.ok or not unterminated:
        return check
    last = len(lines) - 1
    rec, problem = _parse_line(last, lines[-1])
    return ChainCheck(
        False, check.records, check.head_hash, last,
        problem or f"line {last + 1} does not end with a newline: the file was cut or edited",
        _int_seq(rec) if rec else None,
    )


def log_text(chained: Sequence[dict[str, Any]]) -> str:
    """The JSONL text of a chained log: one canonical line each, newline-terminated."""
    return "".join(canonical_json(rec) + "\n" for rec in chained)


__all__ = [
    "GENESIS", "TRANSITION_FIELDS", "ChainCheck", "canonical_json", "chain_head", "chain_lines",
    "link_hash", "log_text", "transition_line", "verify_chain", "verify_log_bytes",
]
