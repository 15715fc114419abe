"""Ports: what the runtime shell needs from the world, as ``typing.Protocol``s.

The core never calls these (it is sans-I/O: events in, commands out). The
runner in ``interlock.adapters`` drives the core and uses these to carry out
its commands; ``adapters/bootstrap.py`` wires real or fake implementations.
"""

from __future__ import annotations

from typing import Any, Iterable, Protocol, runtime_checkable

import attrs

from interlock.core.commands import Alert, Execute, RequestApproval, Rollback
from interlock.core.model import ToolContract


@attrs.frozen
class ApprovalAnswer:
    granted: bool
    by: str
    reason: str = ""


@attrs.frozen
class ExecutionResult:
    """What an executor reports. ``lost`` means the outcome is unknown (timeout, crash)."""

    ok: bool
    result: Any = None
    error: str | None = None
    lost: bool = False


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float: ...


@runtime_checkable
class ApprovalGate(Protocol):
    async def request(self, req: RequestApproval) -> ApprovalAnswer: ...


@runtime_checkable
class ToolExecutor(Protocol):
    async def execute(self, cmd: Execute, contract: ToolContract) -> ExecutionResult: ...

    async def rollback(self, cmd: Rollback, contract: ToolContract) -> ExecutionResult: ...


@runtime_checkable
class IntentLedger(Protocol):
    """Irreversible-intent ledger (I4), keyed by (tool, idempotency key).

    ``claim`` is atomic (across processes for durable ledgers): it returns ``None``
    when the key is now claimed by ``call_id`` (or already was, by the same call:
    a retry or resume), else the call id already holding it."""

    def claim(self, tool: str, key: str, call_id: str, run_id: str) -> str | None: ...

    def release(self, tool: str, key: str, call_id: str) -> None: ...

    def started_keys(self) -> dict[tuple[str, str], str]: ...


@runtime_checkable
class EventStore(Protocol):
    def append(self, run_id: str, records: Iterable[Any]) -> None: ...


@runtime_checkable
class Sink(Protocol):
    def emit(self, alert: Alert) -> None: ...
