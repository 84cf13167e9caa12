"""CSV lead import: streams the file in chunks, so memory stays flat whatever its size.

Each chunk is one transaction: the new leads and their creation audit rows are inserted
together with one multi-row statement each, so a row is imported whole or not at all.
Duplicates are left to the unique constraints (``ON CONFLICT DO NOTHING``) rather than
looked up first: one statement, correct under concurrent intake, and no query plan that
degrades while the table grows from empty.
Rows that would duplicate a lead (in the database, or earlier in the file) are counted as
duplicates; rows that cannot become a lead are rejected with their line and reason.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scheduler.db import insert_or_ignore
from scheduler.errors import InvalidLeadError
from scheduler.leads import Contact, LeadIn, build_lead
from scheduler.models import Lead, Stage, StageEvent

CHUNK_ROWS = 1000

MAX_LISTED_REJECTIONS = 1000

# Header spellings seen in CRM and ad-platform exports, mapped to our field names.
HEADER_ALIASES = {
    "full_name": "name",
    "email_address": "email",
    "e-mail": "email",
    "phone_number": "phone",
    "mobile": "phone",
    "whatsapp": "phone",
    "company_name": "company",
    "organization": "company",
    "job_title": "role",
    "title": "role",
    "lead_source": "source",
}
LEAD_FIELDS = frozenset({"name", "email", "phone", "company", "role", "source", "timezone"})
# Columns kept on the lead as its attribution (where it came from), e.g. utm_campaign.
ATTRIBUTION_PREFIXES = ("utm_", "ref", "campaign", "ad_", "gclid", "fbclid")


@dataclass(frozen=True, slots=True)
class Rejection:
    """A row that did not become a lead: its line in the file and why."""

    line: int
    reason: str


@dataclass(slots=True)
class ImportReport:
    """What an import did. ``rejections`` lists the first rejected rows; ``reasons`` counts
    all of them by reason, so the report stays small for any file size."""

    created: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Data rows read (header excluded)."""
        return self.created + self.duplicates + self.rejected

    def reject(self, line: int, reason: str) -> None:
        """Count a rejected row, keeping its details while the list is short."""
        self.rejected += 1
        self.reasons[reason.split(":", maxsplit=1)[0]] += 1
        if len(self.rejections) < MAX_LISTED_REJECTIONS:
            self.rejections.append(Rejection(line, reason))


@dataclass(slots=True)
class _Row:
    line: int
    data: LeadIn
    contact: Contact


def _column_name(header: str) -> str:
    key = header.strip().lower().replace(" ", "_")
    return HEADER_ALIASES.get(key, key)


def _decoded_lines(stream: BinaryIO, on_bytes: Callable[[int], None]) -> Iterator[str]:
    """Lines of a UTF-8 file (BOM tolerated), reporting bytes consumed for a progress bar."""
    first = True
    for raw in stream:
        on_bytes(len(raw))
        line = raw.decode("utf-8", errors="replace")
        if first:
            line, first = line.removeprefix("\ufeff"), False
        yield line


def _to_lead_in(record: dict[str, str], columns: list[str]) -> LeadIn:
    values: dict[str, Any] = {}
    attribution: dict[str, str] = {}
    for column, value in zip(columns, record.values(), strict=False):
        if not value:
            continue
        if column in LEAD_FIELDS:
            values[column] = value
        elif column.startswith(ATTRIBUTION_PREFIXES):
            attribution[column] = value[:500]
    return LeadIn(**values, attribution=attribution)


def _parse(
    line: int, record: dict[str, str], columns: list[str], region: str, report: ImportReport
) -> _Row | None:
    if None in record:  # csv puts surplus fields under the None key
        report.reject(line, "malformed: more fields than the header has")
        return None
    try:
        data = _to_lead_in(record, columns)
        return _Row(line, data, Contact.of(data, region))
    except ValidationError as exc:
        first = exc.errors()[0]
        report.reject(line, f"invalid {'.'.join(map(str, first['loc']))}: {first['msg']}")
    except InvalidLeadError as exc:
        report.reject(line, exc.message)
    return None


@dataclass(slots=True)
class _Writer:
    """Writes parsed rows to the database a chunk at a time, counting into ``report``."""

    sessions: async_sessionmaker[AsyncSession]
    report: ImportReport
    now: datetime
    actor: str

    async def write(self, chunk: list[_Row]) -> None:
        """Import one chunk in one transaction: leads whose email or phone already exists
        (in the database, in this chunk, or inserted concurrently by an intake) are skipped
        by ``ON CONFLICT DO NOTHING`` and counted as duplicates."""
        values = [build_lead(row.data, row.contact, self.now) for row in chunk]
        async with self.sessions.begin() as session:
            insert_lead = insert_or_ignore(session, Lead).returning(Lead.id)
            ids = list(await session.scalars(insert_lead, values))
            if ids:
                event = {"to_stage": Stage.NEW.value, "actor": self.actor, "at": self.now}
                await session.execute(
                    insert(StageEvent), [{"lead_id": lead_id, **event} for lead_id in ids]
                )
        self.report.created += len(ids)
        self.report.duplicates += len(chunk) - len(ids)


async def import_csv(
    sessions: async_sessionmaker[AsyncSession],
    path: Path,
    *,
    default_region: str,
    now: datetime,
    actor: str = "import",
    on_progress: Callable[[int], None] = lambda _bytes: None,
) -> ImportReport:
    """Import leads from the CSV file at ``path``; see the module docstring."""
    report = ImportReport()
    writer = _Writer(sessions, report, now, actor)
    with path.open("rb") as stream:
        reader = csv.DictReader(_decoded_lines(stream, on_progress))
        columns = [_column_name(h) for h in reader.fieldnames or []]
        report.ignored_columns = [
            c for c in columns if c not in LEAD_FIELDS and not c.startswith(ATTRIBUTION_PREFIXES)
        ]
        if "email" not in columns and "phone" not in columns:
            raise InvalidLeadError(f"{path}: the header has neither an email nor a phone column")
        chunk: list[_Row] = []
        line = reader.line_num + 1  # where the next record starts (quoted fields span lines)
        for record in reader:
            row = _parse(line, record, columns, default_region, report)
            line = reader.line_num + 1
            if row is not None:
                chunk.append(row)
            if len(chunk) >= CHUNK_ROWS:
                await writer.write(chunk)
                chunk = []
        if chunk:
            await writer.write(chunk)
    return report
