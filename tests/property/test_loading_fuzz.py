"""Fuzzing the loader and ``interlock validate`` (SPEC section 3, invariant I11:
invalid input is rejected with a reason, never a crash).

Valid example documents are mutated (keys dropped or added, values replaced by
wrong types, NaN, infinities, huge numbers, random strings, bytes, dates,
tuples, non-string keys) and random bytes are written as files. Properties:

- ``structure_*`` either return a value or raise LoadError, nothing else;
- every problem names the file and a pointer into the document (the place
  itself, or the mapping where a required key is missing);
- what the loader accepts, a plain draft 2020-12 validator of the published
  schema accepts too (the schema files are never stricter than the loader),
  and it round-trips through unstructure/structure;
- the compiled checker (interlock.core.schemas.Checker) gives jsonschema's
  verdict, on the published schemas and on random tool input schemas;
- the CLI exits 0 or 2 and never prints a traceback or "internal error".
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import io
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from interlock.adapters.cli import main
from interlock.adapters.loading import load_inputs
from interlock.core.convert import (
    structure,
    structure_catalog,
    structure_plans,
    structure_policy,
    unstructure,
)
from interlock.core.errors import LoadError
from interlock.core.schemas import Checker, Unsupported, input_schemas, prelude_problems

EXAMPLES = Path(__file__).parents[2] / "examples" / "basic"
DOCS = {k: yaml.safe_load((EXAMPLES / f"{k}.yaml").read_text()) for k in ("catalog", "plans", "policy")}
TEXTS = {k: (EXAMPLES / f"{k}.yaml").read_bytes() for k in DOCS}
CATALOG = structure_catalog(copy.deepcopy(DOCS["catalog"]), "c")
SCHEMAS = {k: jsonschema.Draft202012Validator(input_schemas()[f"{k}.schema.json"]) for k in DOCS}
# the loader's own reading of "integer": a Python int, never 2.0
_Strict = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, v: isinstance(v, int) and not isinstance(v, bool)))
STRICT = {k: _Strict(input_schemas()[f"{k}.schema.json"]) for k in DOCS}
CHECKERS = {k: Checker(input_schemas()[f"{k}.schema.json"], strict_int=True) for k in DOCS}

leaves = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["low", "medium", "high", "fs.write_file", "0.9", "true", "{path}", "a/b", "", "x{"]),
)
json_values = st.recursive(
    leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6)
non_json = st.one_of(
    st.binary(max_size=4), st.dates(), st.tuples(st.integers()), st.frozensets(st.integers(), max_size=2),
    st.integers().map(lambda i: {i: "int key"}), st.just(datetime.datetime(2024, 1, 1)),
)


def paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from paths(v, (*prefix, i))


def get(doc, path):
    for p in path:
        doc = doc[p]
    return doc


@st.composite
def mutated(draw, kind, values=st.one_of(json_values, non_json), max_mutations=3):
    doc = copy.deepcopy(DOCS[kind])
    for _ in range(draw(st.integers(1, max_mutations))):
        path = draw(st.sampled_from(list(paths(doc))))
        op = draw(st.sampled_from(["replace", "delete", "add", "replace", "duplicate"]))
        if not path:
            if op == "replace" and draw(st.booleans()):
                doc = draw(values)
            continue
        parent, key = get(doc, path[:-1]), path[-1]
        if op == "replace":
            parent[key] = draw(values)
        elif op == "delete":
            del parent[key]
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(values)
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
    return doc


def build(kind, doc):
    if kind == "catalog":
        return structure_catalog(doc, "f.yaml")
    if kind == "plans":
        return structure_plans(doc, "f.yaml", CATALOG)
    return structure_policy(doc, "f.yaml", CATALOG)


def resolves(doc, ptr):
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in ptr.split("/")[1:]] if ptr else []
    for t in tokens:
        if isinstance(doc, dict):
            match = [k for k in doc if str(k) == t]
            if not match:
                return False
            doc = doc[match[0]]
        elif isinstance(doc, list) and t.isascii() and t.isdigit() and int(t) < len(doc):
            doc = doc[int(t)]
        else:
            return False
    return True


def check(kind, doc):
    before = copy.deepcopy(doc)
    if not prelude_problems(doc, "f.yaml"):
        assert (not CHECKERS[kind].errors(doc)) == STRICT[kind].is_valid(doc), "checker and jsonschema disagree"
    try:
        value = build(kind, doc)
    except LoadError as exc:
        assert exc.problems
        for p in exc.problems:
            assert p.file == "f.yaml" and p.message
            assert p.pointer == "" or p.pointer.startswith("/")
            parent = p.pointer.rsplit("/", 1)[0]
            assert resolves(doc, p.pointer) or resolves(doc, parent), p
        return
    assert doc == before, "the loader must not modify its input"
    assert SCHEMAS[kind].is_valid(doc), "the loader accepted what the published schema refuses"
    assert structure(json.loads(json.dumps(unstructure(value))), type(value)) == value


@pytest.mark.parametrize("kind", ["catalog", "plans", "policy"])
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_structure_raises_only_load_errors(kind, data):
    check(kind, data.draw(mutated(kind)))


@pytest.mark.parametrize("kind", ["catalog", "plans", "policy"])
@settings(suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_single_json_mutations_agree_with_the_schema(kind, data):
    # one JSON-only mutation at a time: the schema-level verdicts should mostly
    # be exercised on near-valid documents, where drift would show
    check(kind, data.draw(mutated(kind, values=json_values, max_mutations=1)))


# -- the CLI, in process ------------------------------------------------------------

file_bytes = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda b, i, j: b[:i] + b[i + j:], st.sampled_from(list(TEXTS.values())),
              st.integers(0, 2000), st.integers(1, 40)),
    st.builds(lambda b, i, x: b[:i] + x + b[i:], st.sampled_from(list(TEXTS.values())),
              st.integers(0, 2000), st.binary(min_size=1, max_size=4)),
)


def _dump(doc, as_json):
    if as_json:
        return json.dumps(doc, default=str).encode()
    try:
        return yaml.safe_dump(doc, allow_unicode=True).encode()
    except yaml.YAMLError:
        return json.dumps(doc, default=str).encode()


@st.composite
def file_content(draw, kind):
    choice = draw(st.sampled_from(["valid", "mutated", "mutated", "bytes"]))
    as_json = draw(st.booleans())
    if choice == "valid":
        return (json.dumps(DOCS[kind]).encode() if as_json else TEXTS[kind]), as_json
    if choice == "mutated":
        doc = draw(mutated(kind, values=st.one_of(json_values, st.dates(), st.binary(max_size=3))))
        return _dump(doc, as_json), as_json
    return draw(file_bytes), as_json


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_cli_validate_exits_0_or_2_without_traceback(workdir, data):
    args = ["validate"]
    for kind in ("catalog", "plans", "policy"):
        content, as_json = data.draw(file_content(kind), label=kind)
        path = workdir / f"{kind}.{'json' if as_json else 'yaml'}"
        path.write_bytes(content)
        args += [f"--{kind}", str(path)]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(args)
    assert rc in (0, 2), err.getvalue()
    assert "Traceback" not in err.getvalue() and "internal error" not in err.getvalue(), err.getvalue()
    if rc == 0:
        assert out.getvalue().startswith("ok: ")
    else:
        assert err.getvalue().startswith("interlock: invalid input")
        # load_inputs agrees with the CLI, and raises nothing but LoadError
        with pytest.raises(LoadError):
            load_inputs(*(args[i] for i in (2, 4, 6)))


# -- the compiled checker against jsonschema on random tool input schemas ------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([0.5, 2.0, -1.5]),
                    st.sampled_from(["", "a", "ab", "abc", "x1"]))
instances = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3), max_leaves=8)
type_names = st.sampled_from(["string", "integer", "number", "boolean", "object", "array", "null"])


def _schemas(inner):
    keyword = st.one_of(
        st.builds(lambda t: {"type": t}, type_names | st.lists(type_names, min_size=1, max_size=3, unique=True)),
        st.builds(lambda v: {"enum": v}, st.lists(scalars, min_size=1, max_size=3)),
        st.builds(lambda v: {"const": v}, scalars),
        st.builds(lambda p, r: {"properties": p, "required": r},
                  st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=2),
                  st.lists(st.sampled_from(["a", "b", "c"]), max_size=2, unique=True)),
        st.builds(lambda a: {"additionalProperties": a}, st.booleans() | inner),
        st.builds(lambda i: {"items": i}, inner),
        st.builds(lambda u, lo, hi: {"uniqueItems": u, "minItems": lo, "maxItems": hi},
                  st.booleans(), st.integers(0, 2), st.integers(1, 3)),
        st.builds(lambda kw, b: {kw: b}, st.sampled_from(["minimum", "maximum", "exclusiveMinimum",
                                                          "exclusiveMaximum"]), st.integers(-2, 2) | st.just(0.5)),
        st.builds(lambda lo, hi: {"minLength": lo, "maxLength": hi}, st.integers(0, 2), st.integers(1, 3)),
        st.builds(lambda p: {"pattern": p}, st.sampled_from(["^a", "b$", "[0-9]", "^[^/]*$"])),
    )
    return st.lists(keyword, min_size=1, max_size=3).map(lambda parts: {k: v for d in parts for k, v in d.items()})


user_schemas = st.recursive(st.just({}) | st.booleans(), _schemas, max_leaves=6)


@given(schema=user_schemas, value=instances)
# Regressions: messages for boolean sub-schemas used to crash the describer.
@example(schema={"type": ["string", "array"], "items": False}, value=None)
@example(schema={"properties": {"a": False}, "required": ["a"]}, value={})
def test_checker_agrees_with_jsonschema(schema, value):
    try:
        checker = Checker(schema)
    except Unsupported:
        return
    assert (not checker.errors(value)) == jsonschema.Draft202012Validator(schema).is_valid(value), (schema, value)
    for error in checker.errors(value):
        assert error.message()
