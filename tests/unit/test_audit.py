"""The hash chain of the transition log (I10): round trip and tamper detection."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.core.audit import (
    GENESIS,
    TRANSITION_FIELDS,
    canonical_json,
    chain_head,
    chain_lines,
    link_hash,
    log_text,
    transition_line,
    verify_chain,
    verify_log_bytes,
)
from interlock.core.controller.states import State
from interlock.core.records import TransitionRecord
from tests import audit_samples as sample


def chained() -> list[dict]:
    return chain_lines([transition_line(t, sample.RUN_ID) for t in sample.transitions()])


def log_bytes() -> bytes:
    return log_text(chained()).encode("utf-8")


HEAD = chain_head(chained())
N = len(sample.STEPS)


def test_transition_line_has_the_documented_fields_in_order():
    rec = sample.transitions()[4]
    line = transition_line(rec, "r")
    assert tuple(line) == TRANSITION_FIELDS[:-2]
    assert (line["from"], line["trigger"], line["to"]) == ("ready", "dispatch", "running_live")
    assert line["schema_version"] == 1 and line["run_id"] == "r"


def test_enum_states_are_written_as_their_values():
    rec = TransitionRecord(0, 1.0, "call", "p/a", "p", "ag", State.PROPOSED, "accept", State.WAITING, "r")
    assert transition_line(rec, "r")["from"] == "proposed"
    assert json.loads(canonical_json(transition_line(rec, "r")))["to"] == "waiting"


def test_chain_round_trip_links_every_record_from_genesis():
    lines = chained()
    assert lines[0]["prev_hash"] == GENESIS
    for prev, cur in zip(lines, lines[1:]):
        assert cur["prev_hash"] == prev["hash"]
    for line in lines:
        assert line["hash"] == link_hash(line["prev_hash"], line)
    text_lines = log_text(lines).splitlines()
    parsed = [json.loads(t) for t in text_lines]
    assert parsed == lines
    for given_lines in (lines, text_lines, parsed):
        check = verify_chain(given_lines, HEAD)
        assert check.ok and check.records == N and check.head_hash == lines[-1]["hash"]
    assert verify_log_bytes(log_bytes(), HEAD).ok


def test_chain_continues_from_a_stored_head():
    lines = [transition_line(t, "r") for t in sample.transitions()]
    first = chain_lines(lines[:5])
    rest = chain_lines(lines[5:], prev_hash=first[-1]["hash"])
    assert first + rest == chain_lines(lines)


def test_empty_log_verifies_against_a_genesis_head():
    assert verify_log_bytes(b"", (0, GENESIS)).ok
    assert chain_head([]) == (0, GENESIS)
    bad = verify_log_bytes(b"", HEAD)
    assert not bad.ok and bad.first_bad == 0 and "truncated" in bad.problem


def test_edited_field_is_a_hash_mismatch_at_its_line():
    lines = chained()
    lines[3] = {**lines[3], "to": "running_live"}
    check = verify_chain(lines, HEAD)
    assert not check.ok and check.first_bad == 3 and check.seq == 3
    assert "edited" in check.problem
    assert check.records == 3 and check.head_hash == lines[2]["hash"]


def test_swapped_lines_are_reported_as_reordered():
    text = log_bytes().decode().splitlines(keepends=True)
    text[4], text[5] = text[5], text[4]
    check = verify_log_bytes("".join(text).encode(), HEAD)
    assert not check.ok and check.first_bad == 4 and check.seq == 5 and "reordered" in check.problem


def test_deleted_line_is_reported_where_it_was():
    text = log_bytes().decode().splitlines(keepends=True)
    del text[6]
    check = verify_log_bytes("".join(text).encode(), HEAD)
    assert not check.ok and check.first_bad == 6 and check.seq == 7


def test_truncation_at_a_record_boundary_needs_the_head():
    text = log_bytes().decode().splitlines(keepends=True)
    cut = "".join(text[:8]).encode()
    assert verify_log_bytes(cut).ok  # without the head a shorter log looks complete
    check = verify_log_bytes(cut, HEAD)
    assert not check.ok and check.first_bad == 8 and check.seq == 8 and "truncated" in check.problem


def test_appended_forged_record_is_caught_by_the_head():
    lines = chained()
    extra = chain_lines([{**transition_line(sample.transitions()[0], sample.RUN_ID), "seq": N}],
                        prev_hash=lines[-1]["hash"])
    check = verify_chain(lines + extra, HEAD)
    assert not check.ok and check.first_bad == N and "appended" in check.problem


def test_a_consistently_rewritten_chain_is_caught_only_by_the_head_hash():
    lines = [transition_line(t, sample.RUN_ID) for t in sample.transitions()]
    lines[2] = {**lines[2], "rule": "forged"}
    forged = chain_lines(lines)
    assert verify_chain(forged).ok
    check = verify_chain(forged, HEAD)
    assert not check.ok and "rewritten" in check.problem


def test_unparseable_line_names_its_line_number():
    text = log_bytes().decode().splitlines(keepends=True)
    text[2] = text[2][:40] + "\n"
    check = verify_log_bytes("".join(text).encode(), HEAD)
    assert not check.ok and check.first_bad == 2 and check.problem.startswith("line 3 ")
    assert "not valid JSON" in check.problem and check.seq is None


def test_value_preserving_edits_are_still_edits():
    lines = chained()
    text = canonical_json(lines[1])
    spaced = text.replace('"seq":1', '"seq": 1')
    assert json.loads(spaced) == lines[1]
    check = verify_chain([canonical_json(lines[0]), spaced])
    assert not check.ok and check.first_bad == 1 and "canonical" in check.problem


def test_missing_final_newline_and_invalid_utf8_are_detected():
    data = log_bytes()
    check = verify_log_bytes(data[:-1], HEAD)
    assert not check.ok and check.first_bad == N - 1 and "newline" in check.problem
    pos = data.index(b"agent-1")
    check = verify_log_bytes(data[:pos] + b"\xff" + data[pos + 1:], HEAD)
    assert not check.ok and check.first_bad == 0 and "UTF-8" in check.problem


def test_records_missing_hash_fields_or_with_a_bad_seq_are_rejected():
    lines = chained()
    no_hash = {k: v for k, v in lines[0].items() if k != "hash"}
    assert "lacks hash" in verify_chain([no_hash]).problem
    assert "not an integer" in verify_chain([{**lines[0], "seq": "0"}]).problem
    assert not verify_chain(["[1, 2]"]).ok
    assert "empty" in verify_chain([""]).problem


def test_nan_is_refused_when_hashing():
    with pytest.raises(ValueError):
        chain_lines([{"seq": 0, "time": float("nan")}])


# --------------------------------------------------------------------------
# Every tampering is detected (100%), at the line it touched.
# --------------------------------------------------------------------------


def _line_of(data: bytes, pos: int) -> int:
    return data[:pos].count(b"\n")


@given(pos=st.integers(min_value=0), new=st.integers(min_value=0, max_value=255))
def test_every_single_byte_edit_is_detected_at_its_line(pos, new):
    data = log_bytes()
    pos %= len(data)
    if data[pos] == new:
        new = (new + 1) % 256
    edited = data[:pos] + bytes([new]) + data[pos + 1:]
    check = verify_log_bytes(edited, HEAD)
    assert not check.ok
    assert check.first_bad == _line_of(data, pos)


@given(pos=st.integers(min_value=0))
def test_every_single_byte_deletion_is_detected_at_its_line(pos):
    data = log_bytes()
    pos %= len(data)
    check = verify_log_bytes(data[:pos] + data[pos + 1:], HEAD)
    assert not check.ok and check.first_bad == _line_of(data, pos)


@given(st.data())
def test_every_swap_deletion_and_truncation_is_detected(data):
    lines = log_bytes().splitlines(keepends=True)
    kind = data.draw(st.sampled_from(["swap", "delete", "truncate", "cut_mid_line"]))
    if kind == "swap":
        i = data.draw(st.integers(0, N - 2))
        j = data.draw(st.integers(i + 1, N - 1))
        lines[i], lines[j] = lines[j], lines[i]
        expected = i
    elif kind == "delete":
        i = data.draw(st.integers(0, N - 1))
        del lines[i]
        expected = i
    elif kind == "truncate":
        k = data.draw(st.integers(0, N - 1))
        lines = lines[:k]
        expected = k
    else:
        k = data.draw(st.integers(0, N - 1))
        cut = data.draw(st.integers(1, len(lines[k]) - 1))
        lines = lines[:k] + [lines[k][:cut]]
        expected = k
    check = verify_log_bytes(b"".join(lines), HEAD)
    assert not check.ok and check.first_bad == expected, (kind, check)
