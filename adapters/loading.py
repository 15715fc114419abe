"""Reading the input files: bytes -> document -> domain values, every problem at once.

YAML is read with a safe loader only (no Python objects), with three changes
that keep "what you wrote is what you get": a duplicate mapping key is an
error (PyYAML silently keeps the last one), dates stay strings (YAML 1.2: a
``version: 2024-01-01`` arg is text, not a ``datetime.date``), and aliases
that expand into a huge or self-containing document are refused before they
are built. Every failure is a :class:`LoadError` naming the file and where.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import attrs
import yaml

from interlock.core.convert import structure_catalog, structure_plans, structure_policy
from interlock.core.errors import LoadError, Problem
from interlock.core.model import Catalog, PlanSet, Policy
from interlock.core.schemas import describe_value

__all__ = ["Inputs", "load_inputs", "read_document", "MAX_VALUES"]

#: A document may hold at most this many values after expanding YAML aliases
#: (a 100k-step plans file has about 1.5 million).
MAX_VALUES = 5_000_000

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"


def _make_loader(base: type) -> type:
    """A safe loader on ``base`` (libyaml's when available): duplicate keys are
    errors, dates stay strings."""

    class Loader(base):  # type: ignore[misc, valid-type]
        yaml_implicit_resolvers = {
            first: [(tag, rx) for tag, rx in resolvers if tag != _TIMESTAMP]
            for first, resolvers in base.yaml_implicit_resolvers.items()
        }

        def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict:
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, yaml.Mark] = {}
                for key_node, _ in node.value:
                    if key_node.tag == _MERGE:
                        continue  # "<<: *base" may be overridden by explicit keys
                    key = self.construct_object(key_node, deep=True)
                    try:
                        first = seen.get(key)
                    except TypeError:
                        continue  # unhashable: the base class reports it
                    if first is not None:
                        raise yaml.constructor.ConstructorError(
                            None, None,
                            f"duplicate key {key!r} (first at line {first.line + 1}); "
                            "each key may appear once",
                            key_node.start_mark)
                    seen[key] = key_node.start_mark
            return super().construct_mapping(node, deep=deep)

    return Loader


_Loader = _make_loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@attrs.frozen
class Inputs:
    """The three inputs of a run, loaded and checked, with what identifies them."""

    catalog: Catalog
    plans: PlanSet
    policy: Policy
    #: sha256 hex of each file's bytes, keyed "catalog", "plans" and "policy"
    #: (no "policy" key when the safe default policy was used).
    digests: dict[str, str]
    #: the paths as given, same keys as ``digests``.
    paths: dict[str, str]


def read_document(path: str | os.PathLike[str]) -> Any:
    """The parsed mapping in ``path``: YAML for .yaml/.yml, JSON for .json, otherwise YAML."""
    return _parse(_read_bytes(path), str(path))


def load_inputs(
    catalog_path: str | os.PathLike[str],
    plans_path: str | os.PathLike[str],
    policy_path: str | os.PathLike[str] | None = None,
) -> Inputs:
    """Read and check all input files; raise one LoadError with the problems of all of them.

    Plans are checked against the catalog only when the catalog loaded (otherwise
    every step would repeat the catalog's problem). No policy file means the
    safe default :class:`Policy`.
    """
    problems: list[Problem] = []
    digests: dict[str, str] = {}
    paths: dict[str, str] = {}

    def attempt(key: str, path: str | os.PathLike[str], build: Any) -> Any:
        name = str(path)
        paths[key] = name
        try:
            data = _read_bytes(path)
            digests[key] = hashlib.sha256(data).hexdigest()
            return build(_parse(data, name), name)
        except LoadError as exc:
            problems.extend(exc.problems)
            return None

    catalog = attempt("catalog", catalog_path, structure_catalog)
    plans = attempt("plans", plans_path, lambda doc, name: structure_plans(doc, name, catalog))
    policy = Policy()
    if policy_path is not None:
        policy = attempt("policy", policy_path, lambda doc, name: structure_policy(doc, name, catalog))
    if problems:
        raise LoadError(problems)
    return Inputs(catalog=catalog, plans=plans, policy=policy, digests=digests, paths=paths)


# --------------------------------------------------------------------------
# Bytes and syntax
# --------------------------------------------------------------------------


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    name = str(path)
    p = Path(path)
    try:
        if p.is_dir():
            return _fail(name, "is a directory; expected a file")
        return p.read_bytes()
    except FileNotFoundError:
        return _fail(name, "file not found")
    except PermissionError:
        return _fail(name, "cannot read the file: permission denied")
    except OSError as exc:
        return _fail(name, f"cannot read the file: {exc.strerror or exc}")


def _parse(data: bytes, name: str) -> Any:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _fail(name, "the file is UTF-16 (byte-order mark at offset 0); expected UTF-8 text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return _fail(name, f"not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} "
                           f"(line {line}); expected UTF-8 text")
    text = text.removeprefix("\ufeff")
    if not text.strip():
        return _fail(name, "the file is empty; expected a mapping with schema_version: 1")
    try:
        if name.lower().endswith(".json"):
            doc = json.loads(text, object_pairs_hook=_no_duplicates)
        else:
            doc = _load_yaml(text, name, _Loader)
    except _DuplicateKey as exc:
        return _fail(name, f"invalid JSON: duplicate key {exc.key!r} in an object; each key may appear once")
    except json.JSONDecodeError as exc:
        return _fail(name, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        return _fail(name, f"invalid YAML{where}: {_one_line(what)}")
    except yaml.reader.ReaderError as exc:
        return _fail(name, f"invalid YAML: unacceptable character #x{exc.character:04x} at character "
                           f"{exc.position}: {exc.reason}")
    except yaml.YAMLError as exc:
        return _fail(name, f"invalid YAML: {_one_line(str(exc))}")
    except RecursionError:
        return _fail(name, "nested too deeply to read; expected flatter data")
    if doc is None:
        return _fail(name, "the file holds no document (only comments?); expected a mapping "
                           "with schema_version: 1")
    if not isinstance(doc, dict):
        return _fail(name, f"expected a mapping at the top level, got {describe_value(doc)}")
    return doc


def _load_yaml(text: str, name: str, loader_cls: type) -> Any:
    loader = loader_cls(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, name)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_expansion(root: yaml.Node, name: str) -> None:
    """Refuse self-containing aliases and alias bombs before anything is built.

    Expanded sizes are memoised per node, so this is linear in the file's nodes
    however often an alias is reused.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        nid = id(node)
        if isinstance(node, yaml.ScalarNode):
            sizes[nid] = 1
            continue
        children = node.value if isinstance(node, yaml.SequenceNode) else [n for kv in node.value for n in kv]
        if done:
            on_path.discard(nid)
            sizes[nid] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[nid] > MAX_VALUES:
                mark = node.start_mark
                _fail(name, f"the document expands to more than {MAX_VALUES:,} values through YAML "
                            f"aliases (from line {mark.line + 1}); expected a smaller document")
            continue
        if nid in sizes:
            continue
        if nid in on_path:
            mark = node.start_mark
            _fail(name, f"a YAML alias contains itself (line {mark.line + 1}); expected plain, finite data")
        on_path.add(nid)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _fail(name: str, message: str) -> Any:
    raise LoadError([Problem(name, "", message)])
