""".env.example lists every setting once, with a one-line comment and its real default.

A setting added to ``bot/settings.py`` without a line here, a line naming a variable nothing
reads, or a default shown that is not the default fails this test.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import AliasChoices

from bot.settings import PROJECT_ROOT, Settings

EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"
# A commented-out assignment: "# LEADBOT_PORT=8080".
ASSIGNMENT = re.compile(r"^# ?([A-Z][A-Z0-9_]*)=(.*)$")


def env_name(field: str) -> str:
    """The variable a field is read from (OPENAI_* keep the SDK's own names)."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"LEADBOT_{field.upper()}"


FIELDS = {env_name(field): field for field in Settings.model_fields}


def entries() -> list[tuple[int, str, str, str]]:
    """(line number, name, value shown, the comment line above) for every assignment."""
    lines = EXAMPLE.read_text("utf-8").splitlines()
    found = []
    for number, line in enumerate(lines, 1):
        match = ASSIGNMENT.match(line)
        if match:
            above = lines[number - 2] if number > 1 else ""
            found.append((number, match[1], match[2], above))
    return found


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no developer .env
    for name in list(os.environ):
        if name.startswith(("LEADBOT_", "OPENAI_")):
            monkeypatch.delenv(name)


def test_every_setting_is_listed_exactly_once() -> None:
    names = [name for _, name, _, _ in entries()]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert duplicates == []
    missing = sorted(set(FIELDS) - set(names))
    assert missing == [], f"settings missing from .env.example: {missing}"
    unknown = sorted(set(names) - set(FIELDS))
    assert unknown == [], f".env.example names variables nothing reads: {unknown}"


def test_each_setting_has_a_one_line_comment_above_it() -> None:
    for number, name, _, above in entries():
        assert above.startswith("# ") and not ASSIGNMENT.match(above), (
            f".env.example:{number}: {name} needs a comment line right above it"
        )
        assert len(above) > 10 and "----" not in above, f".env.example:{number}: {name}"


def test_the_values_shown_are_the_defaults() -> None:
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    for number, name, shown, _ in entries():
        field = FIELDS[name]
        default: Any = getattr(defaults, field)
        if isinstance(default, Path):
            # Paths are shown relative to the installed package root they default to.
            assert PROJECT_ROOT / shown == default, f".env.example:{number}: {name}"
            continue
        parsed = getattr(Settings(_env_file=None, **{field: shown}), field)  # type: ignore[call-arg]
        assert parsed == default, f".env.example:{number}: {name}={shown} is not the default"
