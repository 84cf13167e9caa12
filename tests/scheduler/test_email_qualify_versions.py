"""The email qualifier asks the script that is current when a lead arrives (an admin may
publish a new version while the service runs), one version for the whole lead."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from dialogs.icp import load_icp
from dialogs.loader import load_scripts
from scheduler.intake.email_qualify import EmailQualifier

SCRIPT = load_scripts(Path(__file__).resolve().parents[2] / "dialogs" / "scripts")["b2b_default"]
NOW = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
FIELDS = {"name": "Dana", "company": "Northwind", "source": "form"}


async def test_each_lead_is_qualified_on_the_script_current_when_it_arrives() -> None:
    current = [SCRIPT]
    qualifier = EmailQualifier(load_icp(), lambda: current[0])
    first = await qualifier.qualify(dict(FIELDS), {"message": "we are 40 people"}, {}, NOW)
    current[0] = SCRIPT.model_copy(update={"version": "2027-01"})
    second = await qualifier.qualify(dict(FIELDS), {"message": "we are 40 people"}, {}, NOW)
    assert (first["script_version"], second["script_version"]) == ("2026-12", "2027-01")
    assert qualifier.script.version == "2027-01"
    assert EmailQualifier(load_icp(), SCRIPT).script is SCRIPT  # a fixed script still works
