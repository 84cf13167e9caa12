"""CSV import on every backend: exact reports, whole rows, streaming."""

from __future__ import annotations

import asyncio
import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scheduler.errors import InvalidLeadError
from scheduler.intake.importer import import_csv
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.store.models import IdentityConflict, Lead, StageEvent
from tests.support.lead_csv import write_leads_csv

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
Sessions = async_sessionmaker[AsyncSession]


async def counts(sessions: Sessions) -> tuple[int, int]:
    async with sessions() as session:
        leads = await session.scalar(select(func.count()).select_from(Lead))
        events = await session.scalar(select(func.count()).select_from(StageEvent))
    return int(leads or 0), int(events or 0)


async def run(sessions: Sessions, path: Path) -> object:
    return await import_csv(sessions, path, default_region="US", now=NOW)


async def test_report_matches_the_file(sessions: Sessions, tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    expected = write_leads_csv(path, 2500, bad_share=0.01, dup_share=0.02)
    seen: list[int] = []
    report = await import_csv(
        sessions, path, default_region="US", now=NOW, on_progress=seen.append
    )
    assert (report.created, report.duplicates, report.rejected) == (
        expected.created,
        expected.duplicates,
        expected.rejected,
    )
    assert tuple(r.line for r in report.rejections) == expected.rejected_lines
    assert sum(seen) == path.stat().st_size
    assert report.ignored_columns == ["notes"]
    # Every created lead has its creation audit row: nothing was half-imported.
    assert await counts(sessions) == (expected.created, expected.created)


async def test_reimport_creates_nothing(sessions: Sessions, tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    expected = write_leads_csv(path, 300)
    await run(sessions, path)
    again = await import_csv(sessions, path, default_region="US", now=NOW)
    assert (again.created, again.duplicates) == (0, expected.created)
    assert await counts(sessions) == (expected.created, expected.created)


async def test_rows_are_mapped_and_rejected_with_reasons(
    sessions: Sessions, tmp_path: Path
) -> None:
    path = tmp_path / "crm.csv"
    path.write_text(
        "\ufeffname,email,phone,company,utm_source,lead_source\n"
        "Ann,ann@x.com,,Acme,fb,webinar\n"
        "Bob,,+44 20 7946 0958,,,\n"
        "Eve,eve@,,,,\n"
        "Zed,zed@x.com,,,,,surplus\n"
        'Ann again,ANN@x.com,"",,,\n',
        encoding="utf-8",
    )
    report = await import_csv(sessions, path, default_region="US", now=NOW)
    assert (report.created, report.duplicates, report.rejected) == (2, 1, 2)
    assert [(r.line, r.reason.split(":")[0]) for r in report.rejections] == [
        (4, "invalid email address"),
        (5, "malformed"),
    ]
    async with sessions() as session:
        ann = await session.scalar(select(Lead).where(Lead.email == "ann@x.com"))
    assert ann is not None
    assert (ann.name, ann.company, ann.source, ann.attribution) == (
        "Ann",
        "Acme",
        "webinar",
        {"utm_source": "fb"},
    )


async def test_a_file_without_contact_columns_is_refused(
    sessions: Sessions, tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("name,company\nAnn,Acme\n", encoding="utf-8")
    with pytest.raises(InvalidLeadError, match="neither an email nor a phone"):
        await run(sessions, path)


async def test_leads_created_meanwhile_count_as_duplicates(
    sessions: Sessions, tmp_path: Path
) -> None:
    path = tmp_path / "leads.csv"
    expected = write_leads_csv(path, 50, bad_share=0)
    with path.open(encoding="utf-8", newline="") as file:
        first_email = next(csv.DictReader(file))["Email Address"]
    async with sessions.begin() as session:
        await intake(session, LeadIn(email=first_email), default_region="US", now=NOW)
    report = await import_csv(sessions, path, default_region="US", now=NOW)
    # The existing lead had only the email: the row's phone is added to it.
    assert (report.created, report.updated, report.duplicates) == (expected.created - 1, 1, 0)


async def test_import_racing_intakes_of_the_same_people(
    sessions: Sessions, tmp_path: Path
) -> None:
    """Intakes of people who are also in the file, running during the import: every person
    ends up as one lead with one creation row, whoever won."""
    path = tmp_path / "leads.csv"
    expected = write_leads_csv(path, 1500, bad_share=0)
    with path.open(encoding="utf-8", newline="") as file:
        emails = [row["Email Address"] for row in csv.DictReader(file)][::10]

    async def take(email: str) -> bool:
        async with sessions.begin() as session:
            result = await intake(session, LeadIn(email=email), default_region="US", now=NOW)
        return result.created

    report, *created = await asyncio.gather(
        import_csv(sessions, path, default_region="US", now=NOW), *(take(e) for e in emails)
    )
    assert report.created + sum(created) == expected.created  # type: ignore[union-attr]
    assert await counts(sessions) == (expected.created, expected.created)


async def test_shared_switchboard_phones_lose_no_row(sessions: Sessions, tmp_path: Path) -> None:
    """A 2,000-row export where a fifth of the people give their company's switchboard:
    every row ends created, updated, duplicate or rejected, each person with their own email
    is a lead of their own, and every shared phone is reported with its line."""
    path = tmp_path / "leads.csv"
    expected = write_leads_csv(path, 2000, bad_share=0.01, dup_share=0.02, switchboard_share=0.2)
    assert expected.conflicts > 300
    report = await import_csv(sessions, path, default_region="US", now=NOW)
    assert report.rows == 2000
    assert (report.created, report.updated, report.duplicates, report.rejected) == (
        expected.created,
        0,
        expected.duplicates,
        expected.rejected,
    )
    assert report.conflicted == len(report.conflicts) == expected.conflicts
    assert all("shared phone" in c.reason for c in report.conflicts)
    assert await counts(sessions) == (expected.created, expected.created)
    async with sessions() as session:
        stored = await session.scalar(select(func.count()).select_from(IdentityConflict))
    assert stored == expected.conflicts
    # Importing the same file again adds nothing and reports every row as a duplicate.
    again = await import_csv(sessions, path, default_region="US", now=NOW)
    assert (again.created, again.updated, again.duplicates) == (
        0,
        0,
        expected.created + expected.duplicates,
    )
    assert again.conflicted == expected.conflicts  # reported again, stored once
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(IdentityConflict)) == stored
