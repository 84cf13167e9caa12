"""CSV import on every backend: exact reports, whole rows, streaming."""

from __future__ import annotations

import asyncio
import codecs
import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scheduler.errors import InvalidLeadError
from scheduler.intake.csv_text import detect_encoding
from scheduler.intake.importer import ImportReport, import_csv
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


async def run(sessions: Sessions, path: Path) -> ImportReport:
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

    report, created = await asyncio.gather(
        import_csv(sessions, path, default_region="US", now=NOW),
        asyncio.gather(*(take(e) for e in emails)),
    )
    assert report.created + sum(created) == expected.created
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


HUBSPOT_ROWS = [
    ["First Name", "Last Name", "Email", "Phone Number"],
    ["René", "Dubois", "rene@dubois.fr", ""],
    ["Zoë", "", "zoe@x.com", ""],
    ["", "", "", ""],
    ["", "Solo", "solo@x.com", ""],
    ["Bob", "Ray", "RENE@dubois.fr", ""],
    [" ", "", "", ""],
    ["Ann", "Lee", "zoe@x.com", ""],
]


def spreadsheet(rows: list[list[str]], delimiter: str) -> str:
    return "".join(delimiter.join(row) + "\r\n" for row in rows)


async def names(sessions: Sessions) -> dict[str, str | None]:
    async with sessions() as session:
        return {str(lead.email): lead.name for lead in await session.scalars(select(Lead))}


@pytest.mark.parametrize(
    ("encoding", "delimiter"),
    [("utf-8", ","), ("utf-8-sig", ";"), ("cp1252", ";"), ("cp1252", "\t"), ("utf-8", "\t")],
)
async def test_a_hubspot_export_keeps_its_names_in_any_encoding_and_delimiter(
    sessions: Sessions, tmp_path: Path, encoding: str, delimiter: str
) -> None:
    path = tmp_path / "hubspot.csv"
    path.write_bytes(spreadsheet(HUBSPOT_ROWS, delimiter).encode(encoding))
    report = await run(sessions, path)
    assert report.delimiter == delimiter
    assert report.encoding == ("utf-8" if encoding == "utf-8" else encoding)
    # Blank rows are skipped, not rejected; every duplicate is listed with its line.
    assert (report.created, report.duplicates, report.rejected, report.blank) == (3, 2, 0, 2)
    assert await names(sessions) == {
        "rene@dubois.fr": "René Dubois",
        "zoe@x.com": "Zoë",
        "solo@x.com": "Solo",
    }
    assert [(d.line, d.reason) for d in report.duplicate_rows] == [
        (6, "same person as the lead of line 2"),
        (8, "same person as the lead of line 3"),
    ]
    again = await run(sessions, path)
    assert [d.line for d in again.duplicate_rows] == [2, 3, 5, 6, 8]
    assert again.duplicate_rows[0].reason.startswith("same person as lead ")


async def test_a_full_name_column_wins_over_first_and_last(
    sessions: Sessions, tmp_path: Path
) -> None:
    path = tmp_path / "both.csv"
    path.write_text("Name,First Name,Last Name,Email\nDr. Ann Lee,Ann,Lee,ann@x.com\n")
    report = await run(sessions, path)
    assert report.created == 1 and report.ignored_columns == []
    assert await names(sessions) == {"ann@x.com": "Dr. Ann Lee"}


def test_encodings_are_detected() -> None:
    text = "Name;Email\r\nFrançois Œuvre;f@x.fr\r\nRené Dubois;r@x.fr\r\n"
    assert detect_encoding(text.encode("utf-8")) == "utf-8"
    assert detect_encoding(codecs.BOM_UTF8 + text.encode()) == "utf-8-sig"
    assert detect_encoding(text.encode("cp1252")) == "cp1252"
    # A UTF-8 character cut at the end of the sample is still UTF-8.
    assert detect_encoding("Zoë".encode()[:-1]) == "utf-8"
    export = "Name,Company\r\n" + "Zoë Müller,Société Générale – Œuvre ‘Straße’\r\n" * 50
    assert detect_encoding(export.encode("cp1252")) == "cp1252"
