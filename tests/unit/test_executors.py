"""The executor: each mode calls exactly what it may (SPEC section 5), never raises."""

from __future__ import annotations

import asyncio
import functools
import threading
from typing import Any

import pytest

from interlock.adapters.executors import Executor, expand_template
from interlock.adapters.registry import ToolRegistry
from interlock.core.commands import Execute, Rollback
from interlock.core.model import Catalog, Effects, Mode, Risk, RollbackSpec, ToolContract
from interlock.core.ports import ExecutionResult, ToolExecutor

WRITE = ToolContract(
    name="fs.write_file", risk=Risk.MEDIUM, reversible=True,
    rollback=RollbackSpec(tool="fs.restore_file", args={"path": "{path}", "backup": "{result.backup}"}),
    idempotent=True, supports_dry_run=True,
    effects=Effects(reads=("dir:{parent}",), writes=("file:{path}",)),
    input_schema={"type": "object", "required": ["path", "content"], "additionalProperties": False,
                  "properties": {"path": {"type": "string"}, "content": {"type": "string"}}},
    mock_result={"written": 0},
)
RESTORE = ToolContract(name="fs.restore_file", risk=Risk.MEDIUM)
CATALOG = Catalog(tools=(WRITE, RESTORE))


class Counting:
    """A tool implementation that counts its calls and records their kwargs."""

    def __init__(self, result: Any = None, exc: BaseException | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.result, self.exc = result, exc

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        if self.exc is not None:
            raise self.exc
        return self.result


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def execute(executor: Executor, mode: Mode, args: dict[str, Any] | None = None, *,
            tool: str = "fs.write_file", contract: ToolContract = WRITE, timeout_s: float = 5.0) -> ExecutionResult:
    cmd = Execute(call_id="p/s", tool=tool, args=args if args is not None else {"path": "a.txt", "content": "hi"},
                  mode=mode, attempt=1, timeout_s=timeout_s)
    result = run(executor.execute(cmd, contract))
    assert isinstance(result, ExecutionResult)
    return result


@pytest.fixture
def live() -> Counting:
    return Counting(result={"written": 2, "backup": ""})


@pytest.fixture
def reg(live: Counting) -> ToolRegistry:
    reg = ToolRegistry()
    reg.register_live("fs.write_file", live)
    return reg


def test_executor_is_a_tool_executor(reg: ToolRegistry) -> None:
    assert isinstance(Executor(reg, CATALOG), ToolExecutor)


# -- MOCK -------------------------------------------------------------------------


def test_mock_returns_the_mock_result_and_calls_nothing(reg: ToolRegistry, live: Counting) -> None:
    dry = Counting(result={"never": True})
    reg.register_dry_run("fs.write_file", dry)
    result = execute(Executor(reg, CATALOG), Mode.MOCK)
    assert result == ExecutionResult(ok=True, result={"written": 0})
    assert live.calls == [] and dry.calls == []


def test_mock_needs_no_implementation_at_all() -> None:
    assert execute(Executor(ToolRegistry(), CATALOG), Mode.MOCK).result == {"written": 0}


# -- DRY_RUN ----------------------------------------------------------------------


def test_dry_run_uses_the_registered_dry_run_and_never_the_live_one(reg: ToolRegistry, live: Counting) -> None:
    dry = Counting(result={"would_write": 2})
    reg.register_dry_run("fs.write_file", dry)
    result = execute(Executor(reg, CATALOG), Mode.DRY_RUN)
    assert result == ExecutionResult(ok=True, result={"would_write": 2})
    assert dry.calls == [{"path": "a.txt", "content": "hi"}]
    assert live.calls == []


def test_dry_run_without_implementation_previews_from_the_contract(reg: ToolRegistry, live: Counting) -> None:
    result = execute(Executor(reg, CATALOG), Mode.DRY_RUN)
    assert result.ok
    assert result.result == {
        "preview": True, "tool": "fs.write_file", "args": {"path": "a.txt", "content": "hi"},
        "reads": ["dir:{parent}"],  # an absent arg leaves the template as written
        "writes": ["file:a.txt"], "reversible": True, "risk": "medium",
    }
    assert live.calls == []


def test_dry_run_preview_checks_args_against_the_input_schema(reg: ToolRegistry, live: Counting) -> None:
    result = execute(Executor(reg, CATALOG), Mode.DRY_RUN, {"path": 3, "extra": 1})
    assert not result.ok and not result.lost
    assert "input schema of 'fs.write_file'" in result.error
    assert "/path: 3 is not of type 'string'" in result.error
    assert "'content' is a required property" in result.error
    assert live.calls == []


def test_a_dry_run_that_times_out_lost_nothing(reg: ToolRegistry) -> None:
    async def slow(**_: Any) -> None:
        await asyncio.sleep(3600)

    reg.register_dry_run("fs.write_file", slow)
    result = execute(Executor(reg, CATALOG), Mode.DRY_RUN, timeout_s=0.01)
    assert result == ExecutionResult(ok=False, error="timed out after 0.01s", lost=False)


# -- LIVE -------------------------------------------------------------------------


def test_live_calls_the_sync_implementation_with_keyword_args(reg: ToolRegistry, live: Counting) -> None:
    result = execute(Executor(reg, CATALOG), Mode.LIVE)
    assert result == ExecutionResult(ok=True, result={"written": 2, "backup": ""})
    assert live.calls == [{"path": "a.txt", "content": "hi"}]


def test_live_awaits_an_async_implementation() -> None:
    calls = []

    async def write(path: str, content: str) -> dict:
        calls.append(path)
        await asyncio.sleep(0)
        return {"written": len(content)}

    reg = ToolRegistry()
    reg.register_live("fs.write_file", write)
    assert execute(Executor(reg, CATALOG), Mode.LIVE).result == {"written": 2}
    assert calls == ["a.txt"]


def test_live_awaits_an_awaitable_returned_by_a_sync_callable() -> None:
    async def write(path: str, content: str, suffix: str) -> dict:
        return {"p": path + suffix}

    reg = ToolRegistry()
    reg.register_live("fs.write_file", functools.partial(write, suffix="!"))
    assert execute(Executor(reg, CATALOG), Mode.LIVE).result == {"p": "a.txt!"}


def test_sync_implementations_run_off_the_event_loop_thread() -> None:
    threads = []
    reg = ToolRegistry()
    reg.register_live("fs.write_file", lambda **_: threads.append(threading.get_ident()))
    execute(Executor(reg, CATALOG), Mode.LIVE)
    assert threads and threads[0] != threading.get_ident()


def test_live_without_implementation_fails_and_is_never_mocked() -> None:
    result = execute(Executor(ToolRegistry(), CATALOG), Mode.LIVE)
    assert result == ExecutionResult(ok=False, error=(
        "no LIVE implementation registered for tool 'fs.write_file' (install a package with an "
        "'interlock.tools' entry point or pass --tools MODULE)"))


def test_live_without_implementation_does_not_fall_back_to_the_dry_run() -> None:
    reg = ToolRegistry()
    dry = Counting(result={})
    reg.register_dry_run("fs.write_file", dry)
    assert not execute(Executor(reg, CATALOG), Mode.LIVE).ok
    assert dry.calls == []


@pytest.mark.parametrize("exc, error", [
    (ValueError("disk is full"), "ValueError: disk is full"),
    (KeyError("path"), "KeyError: 'path'"),
    (RuntimeError(), "RuntimeError"),
    (SystemExit(3), "SystemExit: 3"),
])
def test_an_exception_is_a_failure_with_its_message(exc: BaseException, error: str) -> None:
    reg = ToolRegistry()
    reg.register_live("fs.write_file", Counting(exc=exc))
    assert execute(Executor(reg, CATALOG), Mode.LIVE) == ExecutionResult(ok=False, error=error)


def test_wrong_arguments_are_a_failure_not_a_crash() -> None:
    reg = ToolRegistry()
    reg.register_live("fs.write_file", lambda path: path)
    result = execute(Executor(reg, CATALOG), Mode.LIVE)
    assert not result.ok and result.error.startswith("TypeError: ") and "content" in result.error


def test_a_sync_live_timeout_is_lost() -> None:
    release = threading.Event()
    started = threading.Event()

    def stuck(**_: Any) -> None:
        started.set()
        release.wait(60)

    reg = ToolRegistry()
    reg.register_live("fs.write_file", stuck)
    try:
        result = execute(Executor(reg, CATALOG), Mode.LIVE, timeout_s=0.05)
    finally:
        release.set()
    assert result == ExecutionResult(ok=False, lost=True, error="timed out after 0.05s")
    # The thread is abandoned, not killed: the side effect may still happen.
    assert started.wait(10)


def test_an_async_live_timeout_is_lost() -> None:
    async def stuck(**_: Any) -> None:
        await asyncio.Event().wait()

    reg = ToolRegistry()
    reg.register_live("fs.write_file", stuck)
    result = execute(Executor(reg, CATALOG), Mode.LIVE, timeout_s=0.01)
    assert result == ExecutionResult(ok=False, lost=True, error="timed out after 0.01s")


def test_a_tools_own_timeout_error_is_an_ordinary_failure() -> None:
    reg = ToolRegistry()
    reg.register_live("fs.write_file", Counting(exc=TimeoutError("upstream did not answer")))
    result = execute(Executor(reg, CATALOG), Mode.LIVE, timeout_s=10)
    assert result == ExecutionResult(ok=False, lost=False, error="TimeoutError: upstream did not answer")


def test_a_non_json_result_is_kept_as_its_repr() -> None:
    class Handle:
        def __repr__(self) -> str:
            return "<Handle 7>"

    reg = ToolRegistry()
    reg.register_live("fs.write_file", lambda **_: Handle())
    assert execute(Executor(reg, CATALOG), Mode.LIVE) == ExecutionResult(ok=True, result={"repr": "<Handle 7>"})


@pytest.mark.parametrize("value, plain", [
    ((1, 2), [1, 2]),
    ({1: "a"}, {"1": "a"}),
    (None, None),
    (float("nan"), {"repr": "nan"}),
])
def test_results_become_plain_json(value: Any, plain: Any) -> None:
    reg = ToolRegistry()
    reg.register_live("fs.write_file", lambda **_: value)
    assert execute(Executor(reg, CATALOG), Mode.LIVE).result == plain


def test_args_are_not_shared_with_the_implementation() -> None:
    def mutate(**kwargs: Any) -> None:
        kwargs["path"] = "elsewhere"

    reg = ToolRegistry()
    reg.register_live("fs.write_file", mutate)
    args = {"path": "a.txt", "content": "hi"}
    execute(Executor(reg, CATALOG), Mode.LIVE, args)
    assert args == {"path": "a.txt", "content": "hi"}


# -- rollback ---------------------------------------------------------------------


def test_rollback_calls_the_compensating_live_implementation(reg: ToolRegistry, live: Counting) -> None:
    restore = Counting(result={"restored": "a.txt"})
    reg.register_live("fs.restore_file", restore)
    cmd = Rollback(call_id="p/s", tool="fs.restore_file", args={"path": "a.txt", "backup": "abc"}, timeout_s=5)
    assert run(Executor(reg, CATALOG).rollback(cmd, RESTORE)) == ExecutionResult(ok=True, result={"restored": "a.txt"})
    assert restore.calls == [{"path": "a.txt", "backup": "abc"}]
    assert live.calls == []


def test_rollback_failures_and_timeouts_are_reported_not_raised() -> None:
    reg = ToolRegistry()
    ex = Executor(reg, CATALOG)
    cmd = Rollback(call_id="p/s", tool="fs.restore_file", args={}, timeout_s=30)
    assert "no LIVE implementation registered for tool 'fs.restore_file'" in run(ex.rollback(cmd, RESTORE)).error
    reg.register_live("fs.restore_file", Counting(exc=OSError("gone")))
    assert run(ex.rollback(cmd, RESTORE)) == ExecutionResult(ok=False, error="OSError: gone")
    cmd = Rollback(call_id="p/s", tool="fs.restore_file", args={}, timeout_s=0.01)

    async def stuck(**_: Any) -> None:
        await asyncio.sleep(3600)

    other = ToolRegistry()
    other.register_live("fs.restore_file", stuck)
    assert run(Executor(other, CATALOG).rollback(cmd, RESTORE)) == ExecutionResult(
        ok=False, lost=True, error="timed out after 0.01s")


# -- templates --------------------------------------------------------------------


@pytest.mark.parametrize("template, args, expected", [
    ("file:{path}", {"path": "a/b"}, "file:a/b"),
    ("file:{path}", {}, "file:{path}"),
    ("{a}-{b}", {"a": 1}, "1-{b}"),
    ("plain", {"path": "x"}, "plain"),
    ("{{literal}}:{path}", {"path": "x"}, "{literal}:x"),
    ("broken {", {"path": "x"}, "broken {"),
])
def test_expand_template(template: str, args: dict, expected: str) -> None:
    assert expand_template(template, args) == expected


def test_rollback_args_are_checked_against_the_compensating_tool_schema() -> None:
    strict = ToolContract(name="fs.restore_file", risk=Risk.MEDIUM, input_schema={
        "type": "object", "required": ["path", "backup"],
        "properties": {"path": {"type": "string"}, "backup": {"type": "string", "pattern": "^([0-9a-f]{32})?$"}}})
    reg = ToolRegistry()
    restore = Counting(result={})
    reg.register_live("fs.restore_file", restore)
    ex = Executor(reg, Catalog(tools=(WRITE, strict)))
    unexpanded = Rollback(call_id="p/s", tool="fs.restore_file", args={"path": "a", "backup": "{result.backup}"},
                          timeout_s=5)
    result = run(ex.rollback(unexpanded, strict))
    assert not result.ok and not result.lost
    assert result.error.startswith("rollback not started: args do not match the input schema of 'fs.restore_file'")
    assert "/backup" in result.error
    assert restore.calls == []
    fine = Rollback(call_id="p/s", tool="fs.restore_file", args={"path": "a", "backup": "0" * 32}, timeout_s=5)
    assert run(ex.rollback(fine, strict)).ok and len(restore.calls) == 1
