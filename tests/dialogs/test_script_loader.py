"""The script loader: shipped scripts load, broken ones are refused with file, line and reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dialogs.icp import load_icp
from dialogs.loader import ScriptError, check_dir, load_script, load_scripts
from dialogs.script import (
    BUTTON_TITLE_MAX,
    LIST_ROW_DESCRIPTION_MAX,
    LIST_ROW_TITLE_MAX,
    AnswerKind,
    Script,
)
from dialogs.yaml_source import Problem

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "dialogs" / "scripts"
BROKEN = ROOT / "tests" / "data" / "scripts"


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    d = tmp_path / "prompts"
    d.mkdir()
    (d / "interpret.yaml").write_text("version: test\n", "utf-8")
    return d


def _check_one(fixture: str, tmp_path: Path, prompts: Path) -> list[Problem]:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    shutil.copy(BROKEN / fixture, scripts / fixture)
    return check_dir(scripts, prompts, icp=load_icp())


# ---- every shipped script ------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(SCRIPTS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_script_loads_and_fits_whatsapp(path: Path) -> None:
    script = load_script(path)
    assert script.id == path.stem
    assert 3 <= len(script.questions) <= 4
    for q in script.questions:
        limit = BUTTON_TITLE_MAX if q.render_as() == "buttons" else LIST_ROW_TITLE_MAX
        for o in q.options:
            assert len(o.title) <= limit, (q.slot, o.title)
            assert o.description is None or len(o.description) <= LIST_ROW_DESCRIPTION_MAX


def test_shipped_dir_is_clean_against_the_default_icp() -> None:
    assert check_dir(SCRIPTS, icp=load_icp()) == []


def test_shipped_scripts_name_an_existing_prompt() -> None:
    prompts_dir = ROOT / "prompts"
    problems = check_dir(SCRIPTS, prompts_dir)
    assert problems == [], [str(p) for p in problems]


def test_load_scripts_indexes_by_id() -> None:
    scripts = load_scripts(SCRIPTS)
    assert {"b2b_default", "b2b_es"} <= set(scripts)
    assert scripts["b2b_es"].language == "es"


def test_default_script_shape() -> None:
    s = load_script(SCRIPTS / "b2b_default.yaml")
    assert s.slots == ("need", "company_size", "budget", "timeline")
    assert s.question("need").render_as() == "list"
    assert s.question("need").allow_other
    assert s.question("budget").kind is AnswerKind.NUMBER
    size = s.question("company_size")
    assert [o.id for o in size.options if o.holds(200)] == ["51-200"]
    assert [o.id for o in size.options if o.holds(5000)] == ["201+"]
    buckets = [(o.id, o.within_days) for o in s.question("timeline").options]
    assert buckets == [("asap", 30), ("quarter", 90), ("year", 365), ("later", None)]
    assert {f.id for f in s.faq} == {"price", "who", "how", "where"}
    assert set(s.outcomes) == {"qualified", "disqualified", "handoff"}


# ---- broken scripts: one fixture per failure -----------------------------------------------

CASES = [
    ("bad_yaml.yaml", 11, "invalid YAML"),
    ("duplicate_slot.yaml", 26, "duplicate slot 'budget'"),
    ("unknown_slot.yaml", 5, "unknown slot 'need'"),
    ("missing_outcome.yaml", 34, "missing outcome 'handoff'"),
    ("button_title_too_long.yaml", 12, "max 20 when shown as buttons"),
    ("list_title_too_long.yaml", 10, "max 24 when shown as list"),
    ("too_many_options.yaml", 9, "11 options, max 10"),
    ("too_few_questions.yaml", 5, "needs 3-4 questions, has 2"),
    ("too_many_questions.yaml", 5, "needs 3-4 questions, has 5"),
    ("missing_prompt.yaml", 4, "no prompt file interpret_v9.yaml"),
    ("duplicate_option_id.yaml", 31, "duplicate option id 'asap'"),
    ("unknown_placeholder.yaml", 35, "unknown placeholder {email}"),
    ("duplicate_key.yaml", 5, "duplicate key 'greeting'"),
    ("bad_value.yaml", 24, "questions.2.max_reasks: Input should be a valid integer"),
]


@pytest.mark.parametrize(("fixture", "line", "reason"), CASES, ids=[c[0] for c in CASES])
def test_broken_script_is_refused_with_file_line_and_reason(
    fixture: str, line: int, reason: str, tmp_path: Path, prompts: Path
) -> None:
    problems = _check_one(fixture, tmp_path, prompts)
    assert len(problems) == 1, [str(p) for p in problems]
    (problem,) = problems
    assert problem.file.endswith(fixture)
    assert problem.line == line
    assert reason in problem.message
    assert str(problem).startswith(f"{problem.file}:{line}: ")


def test_unknown_field_points_at_the_typo(tmp_path: Path, prompts: Path) -> None:
    problems = _check_one("unknown_field.yaml", tmp_path, prompts)
    by_message = {p.message: p.line for p in problems}
    assert by_message == {
        "questions.2.txt: Extra inputs are not permitted": 25,
        "questions.2.text: Field required": 22,  # the question that lacks it
    }


def test_every_fixture_has_a_case() -> None:
    covered = {c[0] for c in CASES} | {"unknown_field.yaml"}
    assert {p.name for p in BROKEN.glob("*.yaml")} == covered


def test_load_script_raises_script_error_carrying_problems() -> None:
    with pytest.raises(ScriptError) as caught:
        load_script(BROKEN / "duplicate_slot.yaml")
    assert [p.line for p in caught.value.problems] == [26]
    assert "duplicate_slot.yaml:26: questions.3.slot: duplicate slot" in str(caught.value)


def test_load_scripts_refuses_a_dir_with_any_bad_file() -> None:
    with pytest.raises(ScriptError) as caught:
        load_scripts(BROKEN)
    assert {Path(p.file).name for p in caught.value.problems} >= {
        "bad_yaml.yaml",
        "duplicate_slot.yaml",
    }


def test_duplicate_script_ids_across_files(tmp_path: Path) -> None:
    shutil.copy(SCRIPTS / "b2b_default.yaml", tmp_path / "a.yaml")
    shutil.copy(SCRIPTS / "b2b_default.yaml", tmp_path / "b.yaml")
    problems = check_dir(tmp_path)
    assert len(problems) == 1
    assert problems[0].file.endswith("b.yaml")
    assert "duplicate script id 'b2b_default'" in problems[0].message
    assert problems[0].line is not None


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "expected a mapping"),
        ("- a\n- b\n", "expected a mapping"),
        ("a: [1\n", "invalid YAML"),
    ],
)
def test_not_a_script_at_all(tmp_path: Path, content: str, reason: str) -> None:
    (tmp_path / "x.yaml").write_text(content, "utf-8")
    (problem,) = check_dir(tmp_path)
    assert reason in problem.message


def test_empty_or_missing_dir(tmp_path: Path) -> None:
    assert "no script files" in check_dir(tmp_path)[0].message
    assert "not a directory" in check_dir(tmp_path / "nope")[0].message


def test_building_a_script_in_code_runs_the_same_checks() -> None:
    data = load_script(SCRIPTS / "b2b_default.yaml").model_dump()
    data["questions"] = data["questions"][:2]
    with pytest.raises(ValueError, match="needs 3-4 questions"):
        Script.model_validate(data)


def test_outcome_kind_may_be_omitted_but_must_match_its_key() -> None:
    data = load_script(SCRIPTS / "b2b_default.yaml").model_dump()
    data["outcomes"]["handoff"]["kind"] = "qualified"
    with pytest.raises(ValueError, match="kind 'qualified' under 'handoff'"):
        Script.model_validate(data)
