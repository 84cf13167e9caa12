"""The one YAML loader (issue 13, item 2): data plus lines, the same refusals for every file.

Scripts, the ICP, cadences and prompts all go through :func:`dialogs.yaml_source.load_yaml`;
each refusal here carries the file, the 1-based line and the reason, and prints as
``file:line: reason``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dialogs.icp import IcpError, load_icp
from dialogs.prompts import PromptError, load_prompt
from dialogs.yaml_source import Problem, YamlError, load_yaml, parse_value
from scheduler.followups.cadence import CadenceError, load_cadence

ROOT = Path(__file__).resolve().parents[2]


def refusal(tmp_path: Path, text: str) -> YamlError:
    path = tmp_path / "f.yaml"
    path.write_text(text, "utf-8")
    with pytest.raises(YamlError) as caught:
        load_yaml(path, expected="a mapping of things")
    error = caught.value
    assert error.file == str(path)
    assert str(error) == f"{path}:{error.line}: {error.reason}"
    return error


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (
            "a: 1\nb:\n\tc: 2\n",
            3,
            "invalid YAML: found character '\\t' that cannot start any token",
        ),
        ("a: 1\nb: [1, 2\n", 3, "invalid YAML: expected ',' or ']', but got '<stream end>'"),
        ("", 1, "the file is empty; expected a mapping of things"),
        ("# only a comment\n", 1, "the file is empty; expected a mapping of things"),
        ("# a list\n- a\n- b\n", 2, "expected a mapping of things"),
        ("just text\n", 1, "expected a mapping of things"),
        (
            "a: 1\nwhen: 2024-13-01\n",
            2,
            "invalid YAML: bad value '2024-13-01': month must be in 1..12",
        ),
        (
            "a: 1\n\nn: !!int ten\n",
            3,
            "invalid YAML: bad value 'ten': invalid literal for int() with base 10: 'ten'",
        ),
        ("a: !nope x\n", 1, "invalid YAML: could not determine a constructor for the tag '!nope'"),
        ("a: 1\n---\nb: 2\n", 2, "invalid YAML: but found another document"),
    ],
    ids=[
        "tab",
        "unclosed",
        "empty",
        "comment-only",
        "list",
        "scalar",
        "bad-date",
        "bad-int",
        "unknown-tag",
        "two-documents",
    ],
)
def test_a_bad_file_is_refused_with_its_line(
    tmp_path: Path, text: str, line: int, reason: str
) -> None:
    error = refusal(tmp_path, text)
    assert (error.line, error.reason) == (line, reason)
    assert len(error.problems) == 1


def test_a_missing_or_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(YamlError) as caught:
        load_yaml(tmp_path / "nope.yaml")
    assert (caught.value.line, caught.value.reason) == (None, "file not found")
    assert str(caught.value) == f"{tmp_path / 'nope.yaml'}: file not found"
    (tmp_path / "latin1.yaml").write_bytes(b"a: \xe9\n")
    with pytest.raises(YamlError) as caught:
        load_yaml(tmp_path / "latin1.yaml")
    assert caught.value.reason.startswith("cannot read: ")


def test_duplicate_keys_are_listed_with_their_lines_and_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("a: 1\nb:\n  c: 1\n  c: 2\na: 3\nlist:\n  - {x: 1, x: 2}\n", "utf-8")
    doc = load_yaml(path)
    file = str(path)
    assert doc.duplicates == (
        Problem(file, 4, "duplicate key 'c'"),
        Problem(file, 5, "duplicate key 'a'"),
        Problem(file, 7, "duplicate key 'x'"),
    )
    with pytest.raises(YamlError) as caught:
        doc.refuse_duplicates()
    assert [p.line for p in caught.value.problems] == [4, 5, 7]
    assert str(caught.value).splitlines()[0] == f"{file}:4: duplicate key 'c'"


def test_a_good_file_gives_its_data_and_the_line_of_every_part(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text("# comment\nname: x\nsteps:\n  - id: a\n  - id: b\n    offset: 2d\n", "utf-8")
    doc = load_yaml(path)
    assert doc.data == {"name": "x", "steps": [{"id": "a"}, {"id": "b", "offset": "2d"}]}
    assert doc.duplicates == ()
    doc.refuse_duplicates()  # nothing to refuse
    assert doc.line(()) == 2
    assert doc.line(("steps",)) == 3
    assert doc.line(("steps", 1, "offset")) == 6
    assert doc.line(("steps", 1, "missing_field")) == 5  # the closest enclosing node
    assert str(doc.problem(("name",), "bad")) == f"{path}:2: bad"


def test_one_value_is_parsed_or_refused() -> None:
    assert parse_value("[a, 1]") == ["a", 1]
    assert parse_value("2000") == 2000
    with pytest.raises(YamlError) as caught:
        parse_value("[a")
    assert caught.value.file == "<value>"
    assert caught.value.reason.startswith("invalid YAML: ")


# ---- every loader goes through it, with the same refusals ----------------------------------


def test_the_icp_refuses_a_duplicate_key_and_a_bad_scalar(tmp_path: Path) -> None:
    path = tmp_path / "icp.yaml"
    path.write_text("version: a\nversion: b\n", "utf-8")
    with pytest.raises(IcpError) as caught:
        load_icp(path)
    assert str(caught.value) == f"{path}:2: duplicate key 'version'"
    path.write_text("version: a\nslots:\n  when: 2024-13-01\n", "utf-8")
    with pytest.raises(IcpError) as caught:
        load_icp(path)
    assert caught.value.line == 3
    assert "bad value '2024-13-01'" in caught.value.reason


def test_a_prompt_file_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("version: 1\nsystem: s\nhuman: [h\n", "utf-8")
    with pytest.raises(PromptError) as caught:
        load_prompt(tmp_path, "p")
    assert caught.value.line == 4
    assert str(caught.value).startswith(f"{tmp_path / 'p.yaml'}:4: invalid YAML: ")
    (tmp_path / "p.yaml").write_text("version: 1\nsystem: s\nhuman: h\nsystem: t\n", "utf-8")
    with pytest.raises(PromptError) as caught:
        load_prompt(tmp_path, "p")
    assert str(caught.value) == f"{tmp_path / 'p.yaml'}:4: duplicate key 'system'"


def test_a_cadence_with_a_bad_scalar_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "cadence.yaml"
    path.write_text("version: a\nsequences:\n  s: 2024-13-01\n", "utf-8")
    with pytest.raises(CadenceError) as caught:
        load_cadence(path)
    (problem,) = caught.value.problems
    assert (problem.file, problem.line) == (str(path), 3)
    path.write_text("", "utf-8")
    with pytest.raises(CadenceError) as caught:
        load_cadence(path)
    assert str(caught.value) == (
        f"{path}:1: the file is empty; expected a mapping with version and sequences"
    )


def test_no_other_shipped_module_reads_yaml() -> None:
    """PyYAML is imported by the loader alone, so no file escapes its checks."""
    importers = []
    for package in ("bot", "dialogs", "scheduler", "crm_sync"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom) and node.level == 0
                    else []
                )
                if any(n.split(".")[0] == "yaml" for n in names):
                    importers.append(path.relative_to(ROOT).as_posix())
    assert importers == ["dialogs/yaml_source.py"]
