"""Approval gates: who says yes to a LIVE call or an escalated conflict.

Every gate answers ``RequestApproval`` with an ``ApprovalAnswer``. The runner
wraps whichever gate it uses in ``guarded``, which fails closed (I11): a
deadline passed, an exception, or an answer that is not a clear yes/no is a
denial, and the reason is recorded. The default gate denies everything:
nothing goes LIVE with approval unless somebody configured who approves.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fnmatch
import getpass
import inspect
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, TextIO

import attrs

from interlock.adapters.clocks import SystemClock
from interlock.adapters.executors import in_daemon_thread
from interlock.adapters.loading import read_document
from interlock.core.commands import RequestApproval
from interlock.core.errors import LoadError, Problem
from interlock.core.ports import ApprovalAnswer, ApprovalGate, Clock

__all__ = ["DenyAll", "RulesGate", "ApprovalRule", "TerminalPrompt", "CallableGate", "guarded"]

NO_TTY_REASON = "interactive approval needs a terminal (stdin is not a TTY)"


class DenyAll:
    """The default gate: nothing that needs approval is approved."""

    async def request(self, req: RequestApproval) -> ApprovalAnswer:
        return ApprovalAnswer(granted=False, by="policy:deny_all",
                              reason="no approval gate is configured; approvals are denied by default")


# --------------------------------------------------------------------------
# Rules file
# --------------------------------------------------------------------------


@attrs.frozen
class ApprovalRule:
    """One rule; every criterion given must match (globs for names, equality otherwise)."""

    pointer: str  # where it sits in its file, e.g. "/rules/0"
    decision: str  # "approve" | "deny"
    tool: str | None = None
    risk: str | None = None
    agent: str | None = None
    plan: str | None = None
    kind: str | None = None
    args: dict[str, str] = attrs.field(factory=dict)
    expires: float | None = None  # epoch seconds
    by: str | None = None
    reason: str | None = None

    def matches(self, req: RequestApproval, now: float) -> bool:
        if self.expires is not None and now >= self.expires:
            return False
        if self.risk is not None and self.risk != req.risk:
            return False
        if self.kind is not None and self.kind != req.kind:
            return False
        for pattern, value in ((self.tool, req.tool), (self.agent, req.agent_id), (self.plan, req.plan_id)):
            if pattern is not None and not fnmatch.fnmatchcase(value, pattern):
                return False
        for name, pattern in self.args.items():
            if name not in req.args or not fnmatch.fnmatchcase(_arg_text(req.args[name]), pattern):
                return False
        return True


class RulesGate:
    """Decides from a rules file; the first matching unexpired rule wins, and
    when none matches the answer is no.

    ``expires`` is an ISO-8601 datetime; one without a timezone is UTC, a bare
    date means midnight UTC starting that day. An expired rule is skipped.
    """

    def __init__(self, rules: tuple[ApprovalRule, ...] | list[ApprovalRule], clock: Clock | None = None,
                 source: str = "rules") -> None:
        self.rules = tuple(rules)
        self.clock = clock if clock is not None else SystemClock()
        self.source = source

    @classmethod
    def from_file(cls, path: str | Path, clock: Clock | None = None) -> RulesGate:
        name = str(path)
        doc = read_document(name)  # the shared loader: encodings, duplicate keys, dates as text
        return cls(_parse_rules(name, doc), clock, source=name)

    async def request(self, req: RequestApproval) -> ApprovalAnswer:
        now = self.clock.now()
        for rule in self.rules:
            if rule.matches(req, now):
                granted = rule.decision == "approve"
                return ApprovalAnswer(
                    granted=granted,
                    by=rule.by or f"rules:{self.source}#{rule.pointer}",
                    reason=f"rule {self.source}#{rule.pointer} ({rule.decision})"
                    + (f": {rule.reason}" if rule.reason else ""),
                )
        return ApprovalAnswer(granted=False, by=f"rules:{self.source}", reason="no approval rule matched")


_RULE_KEYS = {"decision", "tool", "risk", "agent", "plan", "kind", "args", "expires", "by", "reason"}
_CHOICES = {"decision": ("approve", "deny"), "risk": ("low", "medium", "high"), "kind": ("live", "conflict")}


def _parse_rules(name: str, doc: Any) -> tuple[ApprovalRule, ...]:
    problems: list[Problem] = []

    def bad(pointer: str, message: str) -> None:
        problems.append(Problem(name, pointer, message))

    if not isinstance(doc, dict):
        raise LoadError([Problem(name, "", f"expected a mapping with schema_version and rules, got {_kind(doc)}")])
    for key in sorted(set(doc) - {"schema_version", "rules"}, key=str):
        bad(f"/{_esc(key)}", "unknown key (expected schema_version, rules)")
    if "schema_version" not in doc:
        bad("/schema_version", "missing; expected schema_version: 1")
    elif doc["schema_version"] != 1 or isinstance(doc["schema_version"], bool):
        bad("/schema_version", f"expected 1, got {doc['schema_version']!r}")
    rules_doc = doc.get("rules", [])
    rules: list[ApprovalRule] = []
    if not isinstance(rules_doc, list):
        bad("/rules", f"expected a list of rules, got {_kind(rules_doc)}")
        rules_doc = []
    for i, item in enumerate(rules_doc):
        p = f"/rules/{i}"
        if not isinstance(item, dict):
            bad(p, f"expected a mapping, got {_kind(item)}")
            continue
        before = len(problems)
        for key in sorted(set(item) - _RULE_KEYS, key=str):
            bad(f"{p}/{_esc(key)}", f"unknown key (expected one of {', '.join(sorted(_RULE_KEYS))})")
        if "decision" not in item:
            bad(f"{p}/decision", "missing; expected approve or deny")
        fields: dict[str, Any] = {}
        for key in ("decision", "tool", "risk", "agent", "plan", "kind", "by", "reason"):
            if key not in item:
                continue
            value = item[key]
            if not isinstance(value, str) or not value:
                bad(f"{p}/{key}", f"expected a non-empty string, got {_kind(value)}")
            elif key in _CHOICES and value not in _CHOICES[key]:
                bad(f"{p}/{key}", f"expected one of {', '.join(_CHOICES[key])}, got {value!r}")
            else:
                fields[key] = value
        if "args" in item:
            args = item["args"]
            if not isinstance(args, dict):
                bad(f"{p}/args", f"expected a mapping of argument name to glob, got {_kind(args)}")
            else:
                for arg, pattern in args.items():
                    if not isinstance(arg, str) or not isinstance(pattern, (str, int, float)) or isinstance(pattern, bool):
                        bad(f"{p}/args/{_esc(arg)}", f"expected a glob string, got {_kind(pattern)}")
                fields["args"] = {str(k): str(v) for k, v in args.items()}
        if "expires" in item:
            expires = _parse_expiry(item["expires"])
            if expires is None:
                bad(f"{p}/expires", f"expected an ISO-8601 datetime such as 2030-01-31T18:00:00Z, got {item['expires']!r}")
            else:
                fields["expires"] = expires
        if len(problems) == before:
            rules.append(ApprovalRule(pointer=p, **fields))
    if problems:
        raise LoadError(problems)
    return tuple(rules)


def _parse_expiry(value: Any) -> float | None:
    # YAML turns an unquoted timestamp into a datetime (or date) itself.
    if isinstance(value, str):
        text = value.strip()
        try:
            value = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            return None
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)
        return stamp.timestamp()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc).timestamp()
    return None


def _arg_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "nothing"}.get(
        type(value), f"{type(value).__name__} {value!r}")


def _esc(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


# --------------------------------------------------------------------------
# Terminal prompt
# --------------------------------------------------------------------------


class TerminalPrompt:
    """Asks the person at the terminal (rich ``Confirm``). Without a terminal it
    refuses instead of blocking a pipeline forever."""

    def __init__(self, console: Any = None, stdin: TextIO | None = None) -> None:
        self._console = console
        self._stdin = stdin

    async def request(self, req: RequestApproval) -> ApprovalAnswer:
        stdin = self._stdin if self._stdin is not None else sys.stdin
        if stdin is None or not _isatty(stdin):
            return ApprovalAnswer(granted=False, by="terminal", reason=NO_TTY_REASON)
        granted = await in_daemon_thread(self._ask, req, stdin)  # an unanswered prompt is abandoned
        return ApprovalAnswer(granted=granted, by=f"terminal:{_user()}",
                              reason="approved at the terminal" if granted else "denied at the terminal")

    def _ask(self, req: RequestApproval, stdin: TextIO) -> bool:
        from rich.console import Console
        from rich.markup import escape
        from rich.prompt import Confirm

        console = self._console if self._console is not None else Console(stderr=True)
        what = "LIVE execution" if req.kind == "live" else f"{req.kind} decision"
        console.print(f"[bold]Approval needed[/bold] for {escape(what)} ({escape(req.reason)})")
        console.print(f"  tool:       {escape(req.tool)}")
        console.print(f"  risk:       {escape(req.risk)}")
        console.print(f"  confidence: {req.confidence:.2f}")
        console.print(f"  agent:      {escape(req.agent_id)}  plan: {escape(req.plan_id)}")
        console.print(f"  calls:      {escape(', '.join(req.call_ids))}")
        console.print(f"  args:       {escape(json.dumps(req.args, sort_keys=True, default=repr))}")
        stream = None if stdin is sys.stdin else stdin
        return bool(Confirm.ask("Approve?", console=console, default=False, stream=stream))


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment
        return "unknown"


# --------------------------------------------------------------------------
# Python callables
# --------------------------------------------------------------------------


class CallableGate:
    """Wraps a function: ``fn(req) -> bool | ApprovalAnswer`` or the seed's
    ``approval_gate_callback(tool: str, confidence: float) -> bool``; sync or async.

    Anything but ``True``/``False`` or an ``ApprovalAnswer`` is a denial.
    """

    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"CallableGate needs a callable, got {fn!r}")
        self.fn = fn
        self.name = name or getattr(fn, "__qualname__", None) or type(fn).__name__
        self._seed_style = _is_seed_signature(fn)

    async def request(self, req: RequestApproval) -> ApprovalAnswer:
        args = (req.tool, req.confidence) if self._seed_style else (req,)
        if inspect.iscoroutinefunction(self.fn) or inspect.iscoroutinefunction(getattr(self.fn, "__call__", None)):
            value = await self.fn(*args)
        else:
            # In a thread of its own, so a blocking callback cannot stall the event
            # loop and the deadline that ``guarded`` enforces.
            value = await in_daemon_thread(self.fn, *args)
        if inspect.isawaitable(value):
            value = await value
        return _as_answer(value, f"callable:{self.name}")


def _is_seed_signature(fn: Callable[..., Any]) -> bool:
    """True for ``(tool, confidence)``; False for ``(req)``.

    Two required positional parameters, or parameters named ``tool`` and
    ``confidence``, mean the seed's callback signature."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    names = {p.name for p in params}
    if {"tool", "confidence"} <= names:
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    return len(required) == 2


def _as_answer(value: Any, by: str) -> ApprovalAnswer:
    if isinstance(value, ApprovalAnswer):
        if not isinstance(value.granted, bool):
            return ApprovalAnswer(False, by, f"approval gate answered granted={value.granted!r}, not True/False")
        return value
    if isinstance(value, bool):
        return ApprovalAnswer(value, by, "approved" if value else "denied")
    return ApprovalAnswer(False, by, f"approval gate answered {_short(value)}, not True/False; denied")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --------------------------------------------------------------------------
# Fail closed
# --------------------------------------------------------------------------


class _Guarded:
    """Fail closed around any gate: deadline, exceptions, malformed answers."""

    def __init__(self, gate: Any, clock: Clock) -> None:
        self.gate = gate
        self.clock = clock
        self._by = f"guard:{type(gate).__name__}"

    async def request(self, req: RequestApproval) -> ApprovalAnswer:
        remaining = req.deadline - self.clock.now()
        if not remaining > 0:  # also NaN
            return ApprovalAnswer(False, self._by, "approval timed out (the deadline had passed before asking)")
        deadline = asyncio.timeout(remaining if math.isfinite(remaining) else None)
        try:
            async with deadline:
                value = self.gate.request(req)
                if inspect.isawaitable(value):  # a duck-typed gate may answer synchronously
                    value = await value
        except TimeoutError as exc:
            if deadline.expired():
                return ApprovalAnswer(False, self._by, f"approval timed out after {remaining:g}s")
            return ApprovalAnswer(False, self._by, f"approval gate failed: {_error_text(exc)}")
        except Exception as exc:  # fail closed (I11)
            return ApprovalAnswer(False, self._by, f"approval gate failed: {_error_text(exc)}")
        answer = _as_answer(value, self._by)
        if not isinstance(answer.by, str) or not answer.by:
            answer = attrs.evolve(answer, by=self._by)
        return answer


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def guarded(gate: ApprovalGate | Any, clock: Clock | None = None) -> ApprovalGate:
    """The gate the runner uses: ``gate`` wrapped to fail closed.

    Enforces ``req.deadline`` (read from ``clock``; the wait itself is real
    time), and turns an exception or an answer that is not a clear yes/no
    into a denial whose reason says what happened.
    """
    if isinstance(gate, _Guarded):
        return gate
    return _Guarded(gate, clock if clock is not None else SystemClock())
