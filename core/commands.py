"""Commands: what the sans-I/O orchestrator asks the outside world to do.

The runner (``interlock.adapters.runner``) carries each out and feeds the
result back as an event. Commands are plain frozen values; order matters
(a ``ClaimIntent`` is answered before the ``Execute`` it guards is emitted).
"""

from __future__ import annotations

from typing import Any, Union

import attrs

from interlock.core.model import Mode


@attrs.frozen
class Execute:
    """Run ``tool`` in ``mode`` with ``args``; answer with ``execution_finished``."""

    call_id: str
    tool: str
    args: dict[str, Any]
    mode: Mode
    attempt: int
    timeout_s: float


@attrs.frozen
class RequestApproval:
    """Ask the approval gate; answer with ``approval_answered(request_id, ...)``.

    ``kind`` is ``"live"`` (LIVE needs approval) or ``"conflict"`` (an escalated
    conflict: the calls wait for the decision). ``deadline`` is absolute time.
    """

    request_id: str
    kind: str
    call_ids: tuple[str, ...]
    tool: str
    risk: str
    confidence: float
    agent_id: str
    plan_id: str
    args: dict[str, Any]
    reason: str
    deadline: float


@attrs.frozen
class ClaimIntent:
    """Durably record the intent to start an irreversible key LIVE, atomically
    refusing a key already claimed; answer with ``intent_answered``. (I4)"""

    call_id: str
    key: str
    tool: str


@attrs.frozen
class ReleaseIntent:
    """A claimed intent that will not be used (the call did not go LIVE after all)."""

    call_id: str
    key: str


@attrs.frozen
class Rollback:
    """Run the compensating tool LIVE; answer with ``rollback_finished``."""

    call_id: str
    tool: str
    args: dict[str, Any]
    timeout_s: float


@attrs.frozen
class Alert:
    kind: str
    severity: int
    message: str
    action: str
    call_id: str | None = None


@attrs.frozen
class Cancelled:
    """A call will never run (or was rejected). Informational."""

    call_id: str
    state: str
    reason: str


@attrs.frozen
class SystemLocked:
    reason: str
    by: str


@attrs.frozen
class SystemUnlocked:
    reason: str
    by: str


@attrs.frozen
class RunFinished:
    """Every call is final (I9); nothing more will be emitted."""

    exit_code: int


Command = Union[
    Execute, RequestApproval, ClaimIntent, ReleaseIntent, Rollback, Alert, Cancelled,
    SystemLocked, SystemUnlocked, RunFinished,
]
