"""The script catalog: new conversations get the newest version, running ones keep theirs."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dialogs.catalog import ScriptCatalog, ScriptVersionEntry
from dialogs.loader import load_scripts

SCRIPTS = load_scripts(Path(__file__).resolve().parents[2] / "dialogs" / "scripts")
FILE = SCRIPTS["b2b_default"]


def entry(version: str, *, day: int = 1, by: str = "admin@team.example") -> ScriptVersionEntry:
    script = FILE.model_copy(update={"version": version})
    at = datetime(2027, 1, day, tzinfo=UTC)
    return ScriptVersionEntry(script, f"v{version}", "console", published_by=by, published_at=at)


def files() -> list[ScriptVersionEntry]:
    return [ScriptVersionEntry(s, "", "file", file=f"{k}.yaml") for k, s in SCRIPTS.items()]


def test_the_file_is_current_until_a_version_is_published() -> None:
    catalog = ScriptCatalog(files())
    assert catalog.current("b2b_default") is FILE
    assert "b2b_default" in catalog and "nope" not in catalog
    catalog.replace(files(), [entry("2027-01", day=1), entry("2027-02", day=2)])
    assert catalog.current("b2b_default").version == "2027-02"
    assert catalog.current("b2b_es") is SCRIPTS["b2b_es"]
    assert [e.version for e in catalog.entries("b2b_default")] == ["2026-12", "2027-01", "2027-02"]


def test_a_running_conversation_gets_exactly_its_version() -> None:
    catalog = ScriptCatalog(files(), [entry("2027-01")])
    assert catalog.get("b2b_default", "2026-12") is FILE
    found = catalog.get("b2b_default", "2027-01")
    assert found is not None and found.version == "2027-01"


def test_a_vanished_version_falls_back_to_the_current_one_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    catalog = ScriptCatalog(files(), [entry("2027-01")])
    with caplog.at_level(logging.WARNING, logger="leadbot.scripts"):
        found = catalog.get("b2b_default", "2025-01")
    assert found is not None and found.version == "2027-01"
    assert "version '2025-01' is gone" in caplog.text
    assert catalog.get("gone_script", "1") is None


def test_a_published_version_wins_over_a_file_of_the_same_version(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="leadbot.scripts"):
        catalog = ScriptCatalog(files(), [entry("2026-12")])
    found = catalog.entry("b2b_default", "2026-12")
    assert found is not None and found.origin == "console"
    assert "both a file" in caplog.text
