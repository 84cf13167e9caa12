"""Scripts as text (the console's editor): the same checks and lines as files, and setting a
script's version in its text."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dialogs.icp import load_icp
from dialogs.loader import (
    ScriptError,
    check_dir,
    check_script_text,
    load_script_text,
    set_version,
)

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "dialogs" / "scripts"
BROKEN = ROOT / "tests" / "data" / "scripts"
PROMPTS = ROOT / "prompts"


@pytest.mark.parametrize("path", sorted(BROKEN.glob("*.yaml")), ids=lambda p: p.name)
def test_text_gets_the_problems_the_file_gets(path: Path, tmp_path: Path) -> None:
    folder = tmp_path / "scripts"
    folder.mkdir()
    shutil.copy(path, folder / path.name)
    icp = load_icp()
    from_file = check_dir(folder, PROMPTS, icp=icp)
    script, from_text = check_script_text(
        path.read_text("utf-8"), "edited", prompts_dir=PROMPTS, icp=icp
    )
    assert from_text and [(p.line, p.message) for p in from_text] == [
        (p.line, p.message) for p in from_file
    ]
    assert {p.file for p in from_text} == {"edited"}
    with pytest.raises(ScriptError):
        load_script_text(path.read_text("utf-8"), "edited", prompts_dir=PROMPTS, icp=icp)


def test_a_sound_text_loads_as_its_file_does() -> None:
    text = (SCRIPTS / "b2b_default.yaml").read_text("utf-8")
    script = load_script_text(text, prompts_dir=PROMPTS, icp=load_icp())
    assert (script.id, script.version) == ("b2b_default", "2026-12")


def test_the_icp_checks_apply_to_text() -> None:
    text = (SCRIPTS / "b2b_default.yaml").read_text("utf-8").replace("- id: build", "- id: b")
    _, problems = check_script_text(text, icp=load_icp())
    assert any("scores option 'build' of 'need'" in p.message for p in problems)
    assert check_script_text(text)[1] == []  # without an ICP, a sound script


def test_set_version_replaces_only_the_version_value() -> None:
    text = (SCRIPTS / "b2b_default.yaml").read_text("utf-8")
    changed = set_version(text, "2027-01: 'quoted'")
    assert changed.replace("\"2027-01: 'quoted'\"", '"2026-12"') == text
    assert load_script_text(changed).version == "2027-01: 'quoted'"
    plain = set_version("id: x\nversion: 3   # a comment\nlanguage: en\n", "4")
    assert plain == 'id: x\nversion: "4"   # a comment\nlanguage: en\n'


def test_set_version_refuses_text_without_a_version() -> None:
    with pytest.raises(ScriptError) as caught:
        set_version("id: x\n", "2")
    assert "no version to set" in str(caught.value)
    with pytest.raises(ScriptError):
        set_version("id: [x\n", "2")
