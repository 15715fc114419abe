"""Templates: the parser, resource rendering and rollback-arg expansion."""

from __future__ import annotations

import pytest

from interlock.core.errors import InterlockError, TemplateError
from interlock.core.resources import MISSING, expand_value, lookup, parse, render_value


def test_parse_splits_literals_and_names():
    t = parse("file:{dir}/{name}.txt")
    assert t.literals == ("file:", "/", ".txt") and t.names == ("dir", "name")
    assert t.render({"dir": "a", "name": "b"}) == "file:a/b.txt"


def test_double_braces_are_literal():
    t = parse("{{x}}:{x}")
    assert t.names == ("x",) and t.render({"x": 1}) == "{x}:1"


@pytest.mark.parametrize("text, where, what", [
    ("file:{path", 5, "unclosed"), ("a}b", 1, "stray"), ("{}", 0, "empty placeholder"),
    ("{a{b}}", 0, "unclosed"),
])
def test_bad_syntax_names_the_position(text, where, what):
    with pytest.raises(TemplateError) as err:
        parse(text)
    assert err.value.position == where and what in str(err.value)
    assert isinstance(err.value, InterlockError) and isinstance(err.value, ValueError)


def test_missing_and_render_agree():
    t = parse("x:{a}:{b}")
    assert t.missing({"a": 1}) == "b" and t.missing({"a": 1, "b": 2}) is None
    with pytest.raises(KeyError):
        t.render({"a": 1})


def test_values_render_canonically_so_equal_args_name_equal_resources():
    assert render_value("s") == "s"
    assert render_value({"b": 1, "a": [True, None]}) == '{"a":[true,null],"b":1}'
    assert render_value(1.5) == "1.5"


def test_lookup_prefers_the_literal_key_then_walks_dots():
    assert lookup({"a.b": 1, "a": {"b": 2}}, "a.b") == 1
    assert lookup({"a": {"b": 2}}, "a.b") == 2
    assert lookup({"a": 3}, "a.b") is MISSING


def test_expand_value_for_rollback_args():
    spec = {"path": "{path}", "backup": "{result.backup}", "n": "{count}", "note": "n={count}",
            "list": ["{path}", 7], "whole": "{result}"}
    got = expand_value(spec, {"path": "p", "count": 3, "result": "shadowed"}, {"backup": "b1"})
    assert got == {"path": "p", "backup": "b1", "n": 3, "note": "n=3", "list": ["p", 7],
                   "whole": {"backup": "b1"}}


def test_expand_value_absent_name_raises_keyerror():
    with pytest.raises(KeyError):
        expand_value({"b": "{result.backup}"}, {}, {})
    with pytest.raises(KeyError):
        expand_value("{path}", {}, None)
