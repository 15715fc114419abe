"""Templates over a call's arguments: resources (``"file:{path}"``) and rollback args.

Syntax: ``{name}`` is a placeholder, ``{{`` and ``}}`` are literal braces.
A name is looked up in the call's args (``{path}``), and may walk into nested
mappings with dots (``{target.path}``) when no argument has the dotted name
itself. Rollback templates may also name the result of the call being undone
(``{result}``, ``{result.backup}``); resource templates may not, since
resources are expanded before anything runs (the catalog loader checks that).

Rendering is deterministic so that two calls naming the same thing name the
same resource: strings are used as they are, every other value as canonical
JSON (``1``, ``true``, ``null``, ``{"a":1}``).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import attrs

from interlock.core.audit import canonical_json
from interlock.core.errors import TemplateError

__all__ = ["Template", "parse", "render_value", "expand_value", "MISSING"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


#: What :meth:`Template.lookup` returns for a name that is not there.
MISSING: Any = _Missing()


@attrs.frozen
class Template:
    """A parsed template: ``literals[0] {names[0]} literals[1] ... {names[-1]} literals[-1]``."""

    text: str
    literals: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def is_single_placeholder(self) -> bool:
        """``"{x}"`` and nothing else: rollback args keep the value's type then."""
        return len(self.names) == 1 and self.literals == ("", "")

    def missing(self, args: Mapping[str, Any]) -> str | None:
        """The first placeholder name that ``args`` does not give, or None."""
        for name in self.names:
            if lookup(args, name) is MISSING:
                return name
        return None

    def render(self, args: Mapping[str, Any]) -> str:
        """Expand; raises ``KeyError`` naming the first absent placeholder."""
        if not self.names:
            return self.literals[0]
        parts = [self.literals[0]]
        for name, lit in zip(self.names, self.literals[1:]):
            value = lookup(args, name)
            if value is MISSING:
                raise KeyError(f"template {self.text!r} names {name!r}, which is not given")
            parts.append(render_value(value))
            parts.append(lit)
        return "".join(parts)


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Template:
    """Parse once (cached: catalogs reuse a handful of templates for every call).

    Raises :class:`TemplateError` for an unclosed ``{``, a stray ``}`` or an
    empty ``{}`` placeholder.
    """
    literals: list[str] = []
    names: list[str] = []
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "{":
            if i + 1 < n and text[i + 1] == "{":
                buf.append("{")
                i += 2
                continue
            end = text.find("}", i + 1)
            inner = text[i + 1 : end] if end >= 0 else ""
            if end < 0 or "{" in inner:
                raise TemplateError(text, i, "unclosed '{'; write '{{' for a literal brace")
            if not inner:
                raise TemplateError(text, i, "empty placeholder '{}'; expected {argument_name}")
            literals.append("".join(buf))
            buf = []
            names.append(inner)
            i = end + 1
        elif ch == "}":
            if i + 1 < n and text[i + 1] == "}":
                buf.append("}")
                i += 2
                continue
            raise TemplateError(text, i, "stray '}'; write '}}' for a literal brace")
        else:
            buf.append(ch)
            i += 1
    literals.append("".join(buf))
    return Template(text, tuple(literals), tuple(names))


def lookup(args: Mapping[str, Any], name: str) -> Any:
    """``args[name]``; else, for a dotted name, a walk through nested mappings; else MISSING."""
    if name in args:
        return args[name]
    if "." not in name:
        return MISSING
    node: Any = args
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return MISSING
        node = node[part]
    return node


def render_value(value: Any) -> str:
    """Strings as they are; anything else as canonical JSON."""
    if isinstance(value, str):
        return value
    return canonical_json(value)


def expand_value(spec: Any, args: Mapping[str, Any], result: Any = None) -> Any:
    """Expand every string template inside ``spec`` (dicts and lists recursively).

    Used for rollback args: ``{name}`` reads the call's args, ``{result}`` /
    ``{result.key}`` the call's result. A string that is exactly one
    placeholder keeps the value's type (``"{count}"`` -> ``3``); anything else
    renders to a string. Raises ``KeyError`` for an absent name and
    :class:`TemplateError` (a ``ValueError``) for bad syntax.
    """
    if isinstance(spec, str):
        tpl = parse(spec)
        if not tpl.names:
            return tpl.literals[0]
        if tpl.is_single_placeholder:
            value = _lookup_scoped(args, result, tpl.names[0])
            if value is MISSING:
                raise KeyError(f"template {spec!r} names {tpl.names[0]!r}, which is not given")
            return value
        parts = [tpl.literals[0]]
        for name, lit in zip(tpl.names, tpl.literals[1:]):
            value = _lookup_scoped(args, result, name)
            if value is MISSING:
                raise KeyError(f"template {spec!r} names {name!r}, which is not given")
            parts.append(render_value(value))
            parts.append(lit)
        return "".join(parts)
    if isinstance(spec, Mapping):
        return {k: expand_value(v, args, result) for k, v in spec.items()}
    if isinstance(spec, (list, tuple)):
        return [expand_value(v, args, result) for v in spec]
    return spec


def _lookup_scoped(args: Mapping[str, Any], result: Any, name: str) -> Any:
    # ``result`` / ``result.x`` always mean the call's result, even if an argument
    # happens to be called "result"; everything else reads the args.
    if name == "result" or name.startswith("result."):
        return lookup({"result": result}, name)
    return lookup(args, name)
