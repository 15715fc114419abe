"""Tool registry: where LIVE and DRY_RUN implementations are found (SPEC section 5).

What a user writes must be simple::

    from interlock.adapters.registry import tool

    @tool("fs.write_file")
    def write_file(path: str, content: str) -> dict: ...

    @tool.dry_run("fs.write_file")
    def preview(path: str, content: str) -> dict: ...

Implementations arrive three ways: the ``interlock.tools`` entry-point group of
any installed package (entry point name = tool name, ``"name [dry_run]"`` for a
dry run), a module named by ``interlock run --tools MODULE``, or a direct
``register_live`` / ``register_dry_run`` call. Two *different* implementations
for one name are an error, never a silent override: which code runs LIVE must
not depend on import order.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import inspect
import os
import sys
import traceback
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator

from interlock.core.errors import LoadError, Problem, ToolLoadError

__all__ = ["ToolRegistry", "default_registry", "tool", "DRY_RUN_SUFFIX", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "interlock.tools"
DRY_RUN_SUFFIX = " [dry_run]"
_TAG = "__interlock_tools__"  # set on decorated functions: [(kind, name), ...]
_LIVE, _DRY = "live", "dry_run"


class ToolRegistry:
    """Tool name -> LIVE callable, and tool name -> DRY_RUN callable."""

    def __init__(self) -> None:
        self._impls: dict[str, dict[str, Callable[..., Any]]] = {_LIVE: {}, _DRY: {}}
        self._origins: dict[tuple[str, str], str] = {}
        self.tool = _ToolDecorator(self)
        """Decorators bound to this registry: ``@reg.tool("x")``, ``@reg.tool.dry_run("x")``."""

    # -- registration ------------------------------------------------------

    def register_live(self, name: str, fn: Callable[..., Any], *, origin: str | None = None) -> Callable[..., Any]:
        return self._register(_LIVE, name, fn, origin)

    def register_dry_run(self, name: str, fn: Callable[..., Any], *, origin: str | None = None) -> Callable[..., Any]:
        return self._register(_DRY, name, fn, origin)

    def _register(self, kind: str, name: str, fn: Callable[..., Any], origin: str | None) -> Callable[..., Any]:
        _check_name(name)
        if not callable(fn):
            raise TypeError(f"the {kind} implementation of tool {name!r} must be callable, got {fn!r}")
        where = origin or _describe(fn)
        table = self._impls[kind]
        old = table.get(name)
        if old is not None and not _same_impl(old, fn):
            label = name + (DRY_RUN_SUFFIX if kind == _DRY else "")
            raise ToolLoadError(
                f"tool {label!r} has two different implementations: "
                f"{self._origins[(kind, name)]} and {where}; uninstall or stop loading one of them"
            )
        table[name] = fn
        self._origins.setdefault((kind, name), where)
        return fn

    # -- lookup ------------------------------------------------------------

    def live(self, name: str) -> Callable[..., Any] | None:
        return self._impls[_LIVE].get(name)

    def dry_run(self, name: str) -> Callable[..., Any] | None:
        return self._impls[_DRY].get(name)

    def names(self) -> tuple[str, ...]:
        """Sorted names with a LIVE or a DRY_RUN implementation."""
        return tuple(sorted(set(self._impls[_LIVE]) | set(self._impls[_DRY])))

    def origin(self, name: str, *, dry_run: bool = False) -> str | None:
        """Where an implementation came from (module:function or entry point of a distribution)."""
        return self._origins.get((_DRY if dry_run else _LIVE, name))

    # -- loading -----------------------------------------------------------

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> tuple[str, ...]:
        """Register every entry point of ``group`` in every installed distribution.

        Returns the entry point names loaded, sorted. A broken entry point (its
        module does not import, the attribute is missing or not callable) raises
        ``ToolLoadError`` naming the distribution and the entry point: a tool
        that silently has no implementation would otherwise fail only at LIVE time.
        """
        loaded = []
        for ep in sorted(metadata.entry_points(group=group), key=lambda e: (e.name, e.value)):
            dist = _dist_name(ep)
            where = f"entry point {ep.name!r} = {ep.value!r} of distribution {dist!r} (group {group!r})"
            if ep.name.endswith(DRY_RUN_SUFFIX):
                kind, name = _DRY, ep.name[: -len(DRY_RUN_SUFFIX)].strip()
            else:
                kind, name = _LIVE, ep.name.strip()
            try:
                _check_name(name)
            except ValueError as exc:
                raise ToolLoadError(f"{where} has an invalid name: {exc}") from None
            try:
                with _scratch():  # only the entry point's own object counts
                    obj = ep.load()
            except Exception as exc:
                raise ToolLoadError(f"{where} cannot be loaded: {_exc_line(exc)}") from exc
            if not callable(obj):
                raise ToolLoadError(f"{where} is not callable (it is {type(obj).__name__})")
            self._register(kind, name, obj, where)
            loaded.append(ep.name)
        return tuple(loaded)

    def load_module(self, spec: str) -> tuple[str, ...]:
        """Import a module of ``@tool`` functions and register them here: the
        decorated callables among the module's globals (its own, and any it
        imports by name, e.g. a compensating tool it relies on).

        ``spec`` is a dotted module name (looked up on ``sys.path``, then in the
        current directory as ``python -m`` would) or a path to a ``.py`` file (a
        file inside a package, with ``__init__.py`` files, is imported as part of
        its package so relative imports work). Returns the labels registered
        (``"name"`` / ``"name [dry_run]"``). A module that cannot be imported, or
        defines no tool, is a ``LoadError`` naming it.
        """
        with _scratch():
            module = _import_path(spec) if _looks_like_path(spec) else _import_dotted(spec)
        # What counts is what the module holds, whether this import ran its
        # decorators or an earlier one did: the same set every time.
        tagged = _module_tags(module)
        if not tagged:
            raise LoadError([Problem(spec, "", "defines no tool: decorate module-level functions with "
                                     "@tool('name') from interlock.adapters.registry")])
        for kind, name, fn in tagged:
            self._register(kind, name, fn, None)
        return tuple(sorted({n + DRY_RUN_SUFFIX if k == _DRY else n for k, n, _ in tagged}))


class _ToolDecorator:
    """``@tool("name")`` and ``@tool.dry_run("name")``.

    Bound to a registry, or (the module-level ``tool``) to the default registry,
    except while ``load_module`` / ``load_entry_points`` import a module: then
    into a scratch registry, and the loader registers what the module holds.
    Either way the function is tagged with its tool names.
    """

    def __init__(self, registry: ToolRegistry | None) -> None:
        self._registry = registry

    def _target(self) -> ToolRegistry:
        return self._registry or _loading_into.get() or default_registry

    def __call__(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self._decorator(_LIVE, name)

    def dry_run(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self._decorator(_DRY, name)

    def _decorator(self, kind: str, name: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        if callable(name) and not isinstance(name, str):
            raise TypeError("@tool needs the tool name: write @tool(\"fs.write_file\"), not a bare @tool")
        _check_name(name)

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self._target()._register(kind, name, fn, None)
            with contextlib.suppress(AttributeError, TypeError):  # builtins cannot be tagged
                setattr(fn, _TAG, [*getattr(fn, _TAG, ()), (kind, name)])
            return fn

        return register


default_registry = ToolRegistry()
_loading_into: contextvars.ContextVar[ToolRegistry | None] = contextvars.ContextVar(
    "interlock_tool_registry", default=None
)
tool = _ToolDecorator(None)


# -- helpers -------------------------------------------------------------------


@contextlib.contextmanager
def _scratch() -> Iterator[None]:
    """Decorators fired by an import land in a throwaway registry, not the default one."""
    token = _loading_into.set(ToolRegistry())
    try:
        yield
    finally:
        _loading_into.reset(token)


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise ValueError(f"a tool name must be a non-empty string without surrounding spaces, got {name!r}")
    if name.endswith(DRY_RUN_SUFFIX.strip()):
        raise ValueError(f"tool name {name!r}: register a dry run with @tool.dry_run(name), not a '[dry_run]' name")


def _same_impl(a: Any, b: Any) -> bool:
    """Same object, or the same function from the same source (a module imported
    twice, e.g. once by path and once by dotted name, runs its decorators twice)."""
    if a is b:
        return True
    key_a, key_b = _source_key(a), _source_key(b)
    return key_a is not None and key_a == key_b


def _source_key(fn: Any) -> tuple[str, int, str] | None:
    with contextlib.suppress(Exception):  # a decorated tool: compare what it wraps
        fn = inspect.unwrap(fn)
    code = getattr(fn, "__code__", None)
    qual = getattr(fn, "__qualname__", None)
    if code is None or qual is None or "<locals>" in qual:  # closures differ by what they close over
        return None
    return (os.path.realpath(code.co_filename), code.co_firstlineno, qual)


def _describe(fn: Any) -> str:
    module = getattr(fn, "__module__", None) or "?"
    qual = getattr(fn, "__qualname__", None) or type(fn).__name__
    return f"{module}:{qual}"


def _module_tags(module: ModuleType) -> list[tuple[str, str, Callable[..., Any]]]:
    return [
        (kind, name, value)
        for value in list(vars(module).values()) if callable(value)
        for kind, name in getattr(value, _TAG, ())
    ]


def _dist_name(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return (dist.metadata["Name"] if dist is not None else None) or "<unknown distribution>"


def _exc_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{text} (at {frames[-1].filename}:{frames[-1].lineno})" if frames else text


def _looks_like_path(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or os.sep in spec


def _import_dotted(spec: str) -> ModuleType:
    if not all(part.isidentifier() for part in spec.split(".")):
        raise LoadError([Problem(spec, "", "expected a dotted module name (pkg.module) or a path to a .py file")])
    module = _try_import(spec, spec)
    cwd = os.getcwd()
    if module is None and cwd not in sys.path and "" not in sys.path:
        # A console script's sys.path lacks the current directory; `python -m` has it.
        sys.path.append(cwd)
        module = _try_import(spec, spec)
    if module is None:
        raise LoadError([Problem(spec, "", "no such module on sys.path or in the current directory")])
    return module


def _try_import(dotted: str, spec: str) -> ModuleType | None:
    """The module; None if it does not exist; a LoadError if importing it fails."""
    importlib.invalidate_caches()
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError as exc:
        if _is_missing(exc, dotted):
            return None
        raise LoadError([Problem(spec, "", f"importing it failed: {_exc_line(exc)}")]) from exc
    except Exception as exc:
        raise LoadError([Problem(spec, "", f"importing it failed: {_exc_line(exc)}")]) from exc


def _is_missing(exc: ModuleNotFoundError, spec: str) -> bool:
    """The module itself (or a parent package of it) is missing, not something it imports."""
    return exc.name is not None and (spec == exc.name or spec.startswith(exc.name + "."))


def _import_path(spec: str) -> ModuleType:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise LoadError([Problem(spec, "", "no such file (expected a path to a .py file or a dotted module name)")])
    if path.suffix != ".py":
        raise LoadError([Problem(spec, "", "expected a .py file")])
    path = path.resolve()
    # Import as part of its package (directories holding __init__.py), so that the
    # module's relative imports work; the package's parent goes on sys.path, at
    # the end so it never shadows an installed module.
    parts = [path.stem] if path.stem != "__init__" else []
    root = path.parent
    while (root / "__init__.py").is_file():
        parts.insert(0, root.name)
        root = root.parent
    dotted = ".".join(parts)
    if not parts or not all(p.isidentifier() for p in parts):
        raise LoadError([Problem(spec, "", f"cannot be imported as a module: {dotted or path.name!r} is not a valid module name")])
    if str(root) not in sys.path:
        sys.path.append(str(root))
    module = _try_import(dotted, spec)
    found = getattr(module, "__file__", None)
    if found is None or Path(found).resolve() != path:
        raise LoadError([Problem(
            spec, "", f"module name {dotted!r} is already taken by {found or 'a namespace package'}; "
            "rename the file or pass its dotted module name",
        )])
    return module
