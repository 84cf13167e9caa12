"""The README and docs/ say only what a fresh clone can follow.

Links point at files inside the repository, every ``LEADBOT_*`` variable they name is a real
setting, and the README's "Try it" stage move is legal once the automatic first touch has
moved the lead to contacted.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bot.settings import Settings
from scheduler.pipeline.stages import ALLOWED_MOVES, Stage

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
SETTING = re.compile(r"\bLEADBOT_[A-Z0-9_]*[A-Z0-9]\b")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_stay_inside_the_repository(doc: Path) -> None:
    text = doc.read_text("utf-8")
    assert "../shared" not in text
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, _anchor = target.partition("#")
        if not path:
            continue  # an anchor in the same page
        resolved = (doc.parent / path).resolve()
        assert resolved.is_relative_to(ROOT), f"{doc.name}: {target} leaves the repository"
        assert resolved.exists(), f"{doc.name}: {target} does not exist"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_variable_named_is_a_setting(doc: Path) -> None:
    settings = {f"LEADBOT_{name.upper()}" for name in Settings.model_fields}
    named = set(SETTING.findall(doc.read_text("utf-8")))
    assert sorted(named - settings) == []


def test_the_readme_example_move_is_legal_after_the_first_touch() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    # The curl that posts to /transitions: its -d '…' body.
    [body] = re.findall(r"-d '(\{[^']*\})'[^'`]*?/transitions", readme)
    move = json.loads(body)
    # The first touch moves a new email lead to contacted (tests/bot/test_first_touch.py).
    assert Stage(move["to"]) in ALLOWED_MOVES[Stage.CONTACTED]
    assert move.get("reason")
