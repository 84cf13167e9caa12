"""Prompt files: loading, validation errors, and that the shipped prompts are sound."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialogs.prompts import PromptError, load_prompt

PROMPTS = Path(__file__).resolve().parents[2] / "prompts"


@pytest.mark.parametrize("name", ["interpret", "draft_followup", "qualify_email_lead"])
def test_shipped_prompts_load_with_a_version(name: str) -> None:
    loaded = load_prompt(PROMPTS, name)
    assert loaded.version and loaded.name == name
    roles = [m.__class__.__name__ for m in loaded.template.messages]
    assert roles == ["SystemMessagePromptTemplate", "HumanMessagePromptTemplate"]


def test_user_text_is_not_re_templated() -> None:
    loaded = load_prompt(PROMPTS, "interpret")
    values = dict.fromkeys(loaded.template.input_variables, "x")
    values["message"] = "{today} {{ }} <b>"
    system, human = loaded.template.format_messages(**values)
    assert "{today} {{ }} <b>" in str(human.content)
    assert "{today}" not in str(system.content)


def write(tmp: Path, body: str) -> Path:
    (tmp / "p.yaml").write_text(body, "utf-8")
    return tmp


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (None, "file not found"),
        ("version: 1\nsystem: hi\n", "missing key(s): human"),
        ("- a\n", "expected a mapping"),
        ("version: 1\nsystem: '{a'\nhuman: h\n", "bad template"),
        ("version: 1\nsystem: s {a}\nhuman: h\nvariables: [b]\n", "'variables' declares"),
        ("version: 1\nsystem: s\nhuman: h\ntemprature: 0\n", "unknown key(s): temprature"),
        ("version: [1\n", "invalid YAML"),
    ],
)
def test_bad_prompt_files_say_file_and_reason(
    tmp_path: Path, body: str | None, reason: str
) -> None:
    if body is not None:
        write(tmp_path, body)
    with pytest.raises(PromptError) as err:
        load_prompt(tmp_path, "p")
    assert str(tmp_path / "p.yaml") in str(err.value)
    assert reason in err.value.reason


def test_history_placeholder_is_optional(tmp_path: Path) -> None:
    write(tmp_path, "version: 2\nhistory: true\nsystem: s\nhuman: '{m}'\n")
    loaded = load_prompt(tmp_path, "p")
    assert loaded.version == "2"
    assert len(loaded.template.format_messages(m="x")) == 2


def test_names_cannot_escape_the_directory(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="invalid prompt name"):
        load_prompt(tmp_path, "../secrets")
