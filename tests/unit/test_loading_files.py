"""Reading files (adapters/loading.py) and ``interlock validate``: every way a file
can be unusable is one LoadError naming the file and what was wrong; the CLI
prints every problem and exits 2 without a traceback."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from interlock.adapters import loading
from interlock.adapters.cli import main
from interlock.adapters.loading import Inputs, load_inputs, read_document
from interlock.core.errors import LoadError
from interlock.core.model import Policy

EXAMPLES = Path(__file__).parents[2] / "examples" / "basic"


def one_problem(path):
    with pytest.raises(LoadError) as info:
        read_document(path)
    (p,) = info.value.problems
    assert p.file == str(path) and p.pointer == ""
    return p.message


def write(tmp_path, name, data: bytes | str):
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_missing_file(tmp_path):
    assert one_problem(tmp_path / "nope.yaml") == "file not found"


def test_directory(tmp_path):
    assert "is a directory" in one_problem(tmp_path)


def test_unreadable_file(tmp_path, monkeypatch):
    path = write(tmp_path, "c.yaml", "a: 1\n")

    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)
    assert "permission denied" in one_problem(path)


def test_non_utf8_names_the_byte_offset(tmp_path):
    msg = one_problem(write(tmp_path, "c.yaml", b"a: 1\nb: caf\xe9\n"))
    assert "not valid UTF-8" in msg and "0xe9 at offset 11" in msg and "line 2" in msg


def test_utf16_is_named(tmp_path):
    assert "UTF-16" in one_problem(write(tmp_path, "c.yaml", "a: 1\n".encode("utf-16")))


def test_utf8_bom_is_accepted(tmp_path):
    assert read_document(write(tmp_path, "c.json", b'\xef\xbb\xbf{"a": 1}')) == {"a": 1}


@pytest.mark.parametrize("text", ["", "  \n\n", "# only a comment\n"])
def test_empty_file(tmp_path, text):
    msg = one_problem(write(tmp_path, "c.yaml", text))
    assert "empty" in msg or "no document" in msg


def test_yaml_syntax_error_has_line_and_column(tmp_path):
    msg = one_problem(write(tmp_path, "c.yaml", "a: 1\nb: [1, 2\nc: 3\n"))
    assert msg.startswith("invalid YAML at line 3, column 2")


def test_json_syntax_error_has_line_and_column(tmp_path):
    msg = one_problem(write(tmp_path, "c.json", '{\n  "a": 1,\n}'))
    assert msg.startswith("invalid JSON at line 3, column 1")


def test_top_level_must_be_a_mapping(tmp_path):
    assert "got a list" in one_problem(write(tmp_path, "c.yaml", "- a\n- b\n"))
    assert "got the number 3" in one_problem(write(tmp_path, "c.json", "3"))


def test_duplicate_yaml_key_is_an_error(tmp_path):
    msg = one_problem(write(tmp_path, "c.yaml", "tools:\n  - name: a\n    risk: low\n    risk: high\n"))
    assert "duplicate key 'risk' (first at line 3)" in msg and "line 4" in msg


def test_duplicate_json_key_is_an_error(tmp_path):
    assert "duplicate key 'a'" in one_problem(write(tmp_path, "c.json", '{"a": 1, "b": {"a": 1, "a": 2}}'))


def test_yaml_merge_keys_may_be_overridden(tmp_path):
    doc = read_document(write(tmp_path, "c.yaml", "base: &b {x: 1, y: 2}\nm: {<<: *b, y: 3}\n"))
    assert doc["m"] == {"x": 1, "y": 3}


def test_yaml_dates_stay_strings(tmp_path):
    assert read_document(write(tmp_path, "c.yaml", "v: 2024-01-01\n")) == {"v": "2024-01-01"}


def test_unsafe_yaml_tags_are_refused(tmp_path):
    msg = one_problem(write(tmp_path, "c.yaml", "a: !!python/object/apply:os.system [echo hi]\n"))
    assert "could not determine a constructor" in msg


def test_self_containing_alias_is_refused(tmp_path):
    assert "contains itself" in one_problem(write(tmp_path, "c.yaml", "a: &x [1, *x]\n"))


def test_alias_bomb_is_refused_before_it_is_built(tmp_path, monkeypatch):
    monkeypatch.setattr(loading, "MAX_VALUES", 10_000)
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    assert "expands to more than 10,000 values" in one_problem(write(tmp_path, "c.yaml", "\n".join(lines)))


def test_deep_nesting_is_an_error_not_a_crash(tmp_path):
    assert "nest" in one_problem(write(tmp_path, "c.json", "[" * 100_000 + "]" * 100_000))
    assert "nest" in one_problem(write(tmp_path, "c.yaml", "a: " + "[" * 5000 + "]" * 5000))


def test_pure_python_yaml_loader_behaves_the_same():
    slow = loading._make_loader(yaml.SafeLoader)
    with pytest.raises(yaml.MarkedYAMLError, match="duplicate key 'x'"):
        loading._load_yaml("a: {x: 1, x: 2}\n", "f", slow)
    assert loading._load_yaml("v: 2024-01-01\n", "f", slow) == {"v": "2024-01-01"}


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".txt", ""])
def test_yaml_unless_json(tmp_path, suffix):
    assert read_document(write(tmp_path, "c" + suffix, "a: [1, 2]\n")) == {"a": [1, 2]}


def test_json_is_parsed_as_json(tmp_path):
    # YAML would read this tab-indented text fine; JSON rules apply to .json
    assert read_document(write(tmp_path, "c.json", '{"a":\t[1, 2]}')) == {"a": [1, 2]}
    assert "invalid JSON" in one_problem(write(tmp_path, "d.json", "a: 1\n"))


# -- load_inputs ----------------------------------------------------------------


def test_load_inputs_examples_with_digests():
    paths = [EXAMPLES / n for n in ("catalog.yaml", "plans.yaml", "policy.yaml")]
    inputs = load_inputs(*paths)
    assert isinstance(inputs, Inputs)
    assert len(inputs.catalog.tools) == 6 and len(inputs.plans.plans) == 3 and inputs.policy.allow_live
    for key, path in zip(("catalog", "plans", "policy"), paths):
        assert inputs.digests[key] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert inputs.paths[key] == str(path)


def test_no_policy_means_the_safe_default():
    inputs = load_inputs(EXAMPLES / "catalog.yaml", EXAMPLES / "plans.yaml")
    assert inputs.policy == Policy() and "policy" not in inputs.digests


def test_json_inputs_load_the_same(tmp_path):
    for name in ("catalog", "plans", "policy"):
        doc = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
        write(tmp_path, f"{name}.json", json.dumps(doc))
    a = load_inputs(*(tmp_path / f"{n}.json" for n in ("catalog", "plans", "policy")))
    b = load_inputs(*(EXAMPLES / f"{n}.yaml" for n in ("catalog", "plans", "policy")))
    assert (a.catalog, a.plans, a.policy) == (b.catalog, b.plans, b.policy)


def test_problems_of_all_files_in_one_error(tmp_path):
    cat = write(tmp_path, "c.yaml", "schema_version: 1\ntools:\n  - {name: a, risk: lo}\n")
    plans = write(tmp_path, "p.yaml", "schema_version: 1\nplans:\n  - {plan_id: p, agent_id: '', steps: []}\n")
    with pytest.raises(LoadError) as info:
        load_inputs(cat, plans, tmp_path / "missing.yaml")
    found = [(p.file, p.pointer) for p in info.value.problems]
    assert found == [(str(cat), "/tools/0/risk"), (str(plans), "/plans/0/agent_id"),
                     (str(tmp_path / "missing.yaml"), "")]


def test_plans_are_not_checked_against_a_broken_catalog(tmp_path):
    cat = write(tmp_path, "c.yaml", "schema_version: 1\ntools: 3\n")
    plans = write(tmp_path, "p.yaml", "schema_version: 1\nplans:\n  - plan_id: p\n    agent_id: a\n"
                                      "    steps: [{id: s, tool: unknown, confidence: 0.5}]\n")
    with pytest.raises(LoadError) as info:
        load_inputs(cat, plans)
    assert [p.file for p in info.value.problems] == [str(cat)]


def test_policy_is_checked_against_the_catalog(tmp_path):
    policy = write(tmp_path, "y.yaml", "tools: {fs.delete: {deny: true}}\n")
    with pytest.raises(LoadError) as info:
        load_inputs(EXAMPLES / "catalog.yaml", EXAMPLES / "plans.yaml", policy)
    (p,) = info.value.problems
    assert p.pointer == "/tools/fs.delete" and "did you mean 'fs.delete_file'?" in p.message


# -- interlock validate -----------------------------------------------------------


def test_validate_ok(capsys):
    rc = main(["validate", "--catalog", str(EXAMPLES / "catalog.yaml"), "--plans", str(EXAMPLES / "plans.yaml"),
               "--policy", str(EXAMPLES / "policy.yaml")])
    assert rc == 0
    assert capsys.readouterr().out == "ok: 6 tools, 3 plans, 5 steps\n"


def test_validate_reports_every_problem_and_exits_2(tmp_path, capsys):
    shutil.copy(EXAMPLES / "catalog.yaml", tmp_path / "catalog.yaml")
    plans = write(tmp_path, "plans.yaml", (EXAMPLES / "plans.yaml").read_text()
                  .replace("confidence: 0.97", 'confidence: "0.97"')
                  .replace("tool: fs.read_file", "tool: fs.read_fil"))
    rc = main(["validate", "--catalog", str(tmp_path / "catalog.yaml"), "--plans", str(plans),
               "--policy", str(tmp_path / "nope.yaml")])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert "3 problem(s)" in err and "Traceback" not in err
    assert f"{plans}: /plans/0/steps/0/confidence: expected a number between 0 and 1" in err
    assert "/plans/1/steps/0/tool: unknown tool 'fs.read_fil' in the catalog; did you mean 'fs.read_file'?" in err
    assert f"{tmp_path / 'nope.yaml'}: (document): file not found" in err


def test_validate_help_has_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["validate", "--help"])
    assert "interlock validate --catalog" in capsys.readouterr().out
