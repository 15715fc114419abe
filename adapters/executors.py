"""The executor: carries out ``Execute`` and ``Rollback`` commands (SPEC section 5).

One rule above all: the mode decides what may be called. MOCK calls nothing,
DRY_RUN calls only a registered dry-run callable (or nothing), and only LIVE
and rollbacks call a LIVE implementation. A LIVE call without an
implementation fails; it is never silently mocked.

Executors never raise for a tool's own errors: every outcome becomes an
``ExecutionResult``. A LIVE timeout is *lost* (``lost=True``): the side effect
may have happened, so the core must not assume it did not (I4, outcome_unknown).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import math
import string
import threading
from typing import Any, Callable

import jsonschema

from interlock.adapters.registry import ToolRegistry, default_registry
from interlock.core.commands import Execute, Rollback
from interlock.core.model import Catalog, Mode, ToolContract
from interlock.core.ports import ExecutionResult

__all__ = ["Executor", "contract_preview", "expand_template", "in_daemon_thread"]


class Executor:
    """``ToolExecutor`` over a ``ToolRegistry`` (the default one unless given)."""

    def __init__(self, registry: ToolRegistry | None = None, catalog: Catalog | None = None) -> None:
        self.registry = registry if registry is not None else default_registry
        self.catalog = catalog

    def execute_now(self, cmd: Execute, contract: ToolContract) -> ExecutionResult | None:
        """The result at once when no user code runs (MOCK; a DRY_RUN preview built from
        the contract), else None. Lets the runner skip a task per side-effect-free call."""
        if cmd.mode == Mode.MOCK:
            return ExecutionResult(ok=True, result=_plain(contract.mock_result))
        if cmd.mode == Mode.DRY_RUN and self.registry.dry_run(cmd.tool) is None:
            return contract_preview(cmd.tool, cmd.args, contract)
        return None

    async def execute(self, cmd: Execute, contract: ToolContract) -> ExecutionResult:
        if cmd.mode == Mode.MOCK:
            return ExecutionResult(ok=True, result=_plain(contract.mock_result))
        if cmd.mode == Mode.DRY_RUN:
            fn = self.registry.dry_run(cmd.tool)
            if fn is None:
                return contract_preview(cmd.tool, cmd.args, contract)
            # A dry run changes nothing, so a timed-out one lost nothing.
            return await _invoke(fn, cmd.args, cmd.timeout_s, lost_on_timeout=False)
        if cmd.mode == Mode.LIVE:
            fn = self.registry.live(cmd.tool)
            if fn is None:
                return ExecutionResult(ok=False, error=_no_live(cmd.tool))
            return await _invoke(fn, cmd.args, cmd.timeout_s, lost_on_timeout=True)
        return ExecutionResult(ok=False, error=f"unknown execution mode {cmd.mode!r}")

    async def rollback(self, cmd: Rollback, contract: ToolContract) -> ExecutionResult:
        """Run the compensating tool LIVE with ``cmd.args`` (already expanded).

        Its args were built at run time from templates, not checked at load
        time like a plan's; when the catalog knows the compensating tool they
        are checked against its input schema first (a template that found no
        value must not reach a LIVE tool)."""
        fn = self.registry.live(cmd.tool)
        if fn is None:
            return ExecutionResult(ok=False, error=_no_live(cmd.tool))
        compensator = self.catalog.get(cmd.tool) if self.catalog is not None else None
        problem = _schema_problem(cmd.tool, cmd.args, compensator.input_schema if compensator else None)
        if problem is not None:
            return ExecutionResult(ok=False, error=f"rollback not started: {problem}")
        return await _invoke(fn, cmd.args, cmd.timeout_s, lost_on_timeout=True)


def contract_preview(tool: str, args: dict[str, Any], contract: ToolContract) -> ExecutionResult:
    """The DRY_RUN result when a tool has no dry-run implementation: the args
    checked against the contract's input schema, and what the call would touch."""
    problem = _schema_problem(tool, args, contract.input_schema)
    if problem is not None:
        return ExecutionResult(ok=False, error=problem)
    return ExecutionResult(ok=True, result={
        "preview": True,
        "tool": tool,
        "args": _plain(args),
        "reads": [expand_template(t, args) for t in contract.effects.reads],
        "writes": [expand_template(t, args) for t in contract.effects.writes],
        "reversible": contract.reversible,
        "risk": contract.risk.value,
    })


def _schema_problem(tool: str, args: dict[str, Any], schema: dict[str, Any] | None) -> str | None:
    if schema is None:
        return None
    try:
        validator = jsonschema.validators.validator_for(schema)(schema)
        errors = sorted(validator.iter_errors(args), key=lambda e: [str(p) for p in e.path])
    except jsonschema.SchemaError as exc:
        return f"tool {tool!r} has an invalid input schema: {exc.message}"
    if not errors:
        return None
    detail = "; ".join(f"{_pointer(e.path) or '(args)'}: {e.message}" for e in errors)
    return f"args do not match the input schema of {tool!r}: {detail}"


def expand_template(template: str, args: dict[str, Any]) -> str:
    """Fill ``{name}`` fields from ``args``; a field naming an absent arg stays as written."""
    try:
        pieces = list(string.Formatter().parse(template))
    except ValueError:
        return template
    out = []
    for literal, field, spec, conv in pieces:
        out.append(literal)
        if field is None:
            continue
        if field in args:
            out.append(str(args[field]))
        else:
            out.append("{" + field + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}")
    return "".join(out)


def _no_live(tool: str) -> str:
    return (f"no LIVE implementation registered for tool {tool!r} (install a package with an "
            f"'interlock.tools' entry point or pass --tools MODULE)")


async def _invoke(fn: Callable[..., Any], args: dict[str, Any], timeout_s: float,
                  *, lost_on_timeout: bool) -> ExecutionResult:
    timeout = timeout_s if timeout_s and timeout_s > 0 and math.isfinite(timeout_s) else None
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            value = await _call(fn, dict(args))
    except TimeoutError as exc:
        if deadline.expired():
            return ExecutionResult(ok=False, lost=lost_on_timeout, error=f"timed out after {timeout_s:g}s")
        return ExecutionResult(ok=False, error=_error_text(exc))  # the tool's own timeout
    except (Exception, SystemExit) as exc:  # the tool's failure: recorded, never raised
        return ExecutionResult(ok=False, error=_error_text(exc))
    return ExecutionResult(ok=True, result=_json_or_repr(value))


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _call(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    if _is_async(fn):
        return await fn(**kwargs)
    value = await in_daemon_thread(fn, **kwargs)
    if inspect.isawaitable(value):  # e.g. a partial of an async function
        value = await value
    return value


async def in_daemon_thread(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run blocking ``fn`` in a daemon thread of its own and await its result.

    Sync code must not stall the event loop (other calls, approval deadlines).
    Not ``asyncio.to_thread``: a thread cannot be killed, and the default
    executor's threads are joined when ``asyncio.run`` ends and at interpreter
    exit, so one hung tool would hang interlock after it gave up on the call.
    A daemon thread is abandoned instead; after a timeout it may still finish
    its side effect, which is why a LIVE timeout is reported as lost.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(ok: bool, value: Any) -> None:
        if future.done():  # cancelled (timed out) meanwhile: nobody is waiting
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def work() -> None:
        try:
            outcome = (True, context.run(fn, *args, **kwargs))
        except BaseException as exc:  # delivered to the awaiting coroutine
            outcome = (False, exc)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the loop is closed: the run is over
            pass

    threading.Thread(target=work, name=f"interlock-{getattr(fn, '__name__', 'tool')}", daemon=True).start()
    return await future


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


def _json_or_repr(value: Any) -> Any:
    """Results go to JSON logs: plain JSON values, or ``{"repr": ...}`` when the
    tool returned something else (the effect happened; the result is kept as text)."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        return {"repr": repr(value)}


def _plain(value: Any) -> Any:
    return _json_or_repr(value)


def _pointer(path: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)
