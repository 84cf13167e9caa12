"""CSV lead import: streams the file in chunks, so memory stays flat whatever its size.

Each chunk is one transaction: the contact points of all its rows are looked up with one query, the
rows are matched in memory with the identity rules (``scheduler.pipeline.identity``: email is the
strongest key; a phone never merges two different emails), and the new leads, their creation audit
rows, contact points and identity events are inserted with one multi-row statement each, so a row
is imported whole or not at all.

Every row ends in exactly one of: ``created`` (a new lead), ``updated`` (an existing lead, in
the database or earlier in the file, gained a contact point), ``duplicates`` (an existing
lead, nothing new) or ``rejected`` (with its line and reason). A row whose contact point
belongs to another lead (a shared switchboard phone, one person already two leads) is also
listed in ``conflicts`` with its line and reason, and recorded in ``identity_conflicts``.
If a concurrent intake inserts one of the chunk's people meanwhile, the chunk is redone row
by row through ``scheduler.pipeline.leads.intake``.
"""

from __future__ import annotations

import csv
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dialogs.errors import LeadbotError
from scheduler.errors import InvalidLeadError
from scheduler.intake.csv_text import SAMPLE_BYTES, decoded_lines, detect_encoding, sniff_delimiter
from scheduler.pipeline.identity import (
    ADDED,
    Conflict,
    Kind,
    Point,
    belongs_reason,
    by_strength,
    owner_ids,
    record_conflicts,
    shared_phone,
    shared_reason,
)
from scheduler.pipeline.leads import Contact, LeadIn, build_lead, intake
from scheduler.pipeline.outbound_events import created_event, emit
from scheduler.store import Session, Sessions
from scheduler.store import contact_points as point_store
from scheduler.store import leads as lead_store
from scheduler.store.events import record_stage_events
from scheduler.store.models import Stage

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
    # Split names (HubSpot: "First Name", "Last Name"; Salesforce: "First Name", "Last Name";
    # others: given/family name): combined into ``name``.
    "firstname": "first_name",
    "given_name": "first_name",
    "lastname": "last_name",
    "surname": "last_name",
    "family_name": "last_name",
}
NAME_PARTS = ("first_name", "last_name")
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
    updated: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    # Every row that was a lead already (in the database or earlier in the file), with its
    # line and whose it is: the file's owner cleans their source with this list.
    duplicate_rows: list[Rejection] = field(default_factory=list)
    blank: int = 0  # rows with no value at all: skipped, neither read nor rejected
    encoding: str = "utf-8"
    delimiter: str = ","
    # Rows (created or updated) with a contact point that stays with another lead.
    conflicted: int = 0
    conflicts: list[Rejection] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Data rows read (header excluded)."""
        return self.created + self.updated + self.duplicates + self.rejected

    def reject(self, line: int, reason: str) -> None:
        """Count a rejected row, keeping its details while the list is short."""
        self.rejected += 1
        self.reasons[reason.split(":", maxsplit=1)[0]] += 1
        if len(self.rejections) < MAX_LISTED_REJECTIONS:
            self.rejections.append(Rejection(line, reason))

    def duplicate(self, line: int, reason: str) -> None:
        """Note a row that added nothing to the lead it matched."""
        self.duplicates += 1
        if len(self.duplicate_rows) < MAX_LISTED_REJECTIONS:
            self.duplicate_rows.append(Rejection(line, reason))

    def conflict(self, line: int, reason: str) -> None:
        """Note a row whose contact point another lead keeps (the row itself is imported)."""
        self.conflicted += 1
        if len(self.conflicts) < MAX_LISTED_REJECTIONS:
            self.conflicts.append(Rejection(line, reason))


@dataclass(slots=True)
class _Row:
    line: int
    data: LeadIn
    contact: Contact


def _column_name(header: str) -> str:
    key = header.strip().lower().replace(" ", "_")
    return HEADER_ALIASES.get(key, key)


def _to_lead_in(record: dict[str, str], columns: list[str]) -> LeadIn:
    values: dict[str, Any] = {}
    attribution: dict[str, str] = {}
    for column, value in zip(columns, record.values(), strict=False):
        if not value:
            continue
        if column in LEAD_FIELDS or column in NAME_PARTS:
            values[column] = value.strip()
        elif column.startswith(ATTRIBUTION_PREFIXES):
            attribution[column] = value[:500]
    if "name" not in values:
        parts = [record_value for column in NAME_PARTS if (record_value := values.pop(column, ""))]
        if parts:
            values["name"] = " ".join(parts)
    for column in NAME_PARTS:
        values.pop(column, None)
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


def _blank(record: dict[str | None, Any]) -> bool:
    values = [v for k, v in record.items() if k is not None] + list(record.get(None) or [])
    return not any(isinstance(v, str) and v.strip() for v in values)


Ref = int | tuple[str, int]  # an existing lead's id, or ("new", index in the chunk)
# A row's line, outcome, conflict reasons and (for a duplicate) whose lead it is.
_Outcome = tuple[int, str, list[str], str]


@dataclass(slots=True)
class _Plan:
    """What one chunk writes, decided in memory before any write."""

    new: list[dict[str, Any]] = field(default_factory=list)
    points: list[tuple[Ref, Point]] = field(default_factory=list)
    conflicts: list[tuple[Ref, Ref, Point, str]] = field(default_factory=list)
    primary: dict[int, dict[str, str]] = field(default_factory=dict)  # existing lead: columns
    outcomes: list[_Outcome] = field(default_factory=list)
    new_lines: list[int] = field(default_factory=list)  # the line of each new lead's row


class _Raced(LeadbotError):
    """A concurrent intake took one of the chunk's people: the chunk is redone row by row."""


def _reason(point: Point, owner: Ref, shared: bool) -> str:
    if isinstance(owner, int):
        return shared_reason(owner) if shared else belongs_reason(point, owner)
    if shared:
        return "shared phone: the lead of an earlier row has another email"
    return f"{point.kind.value} belongs to the lead of an earlier row"


@dataclass(slots=True)
class _Writer:
    """Writes parsed rows to the database a chunk at a time, counting into ``report``."""

    sessions: Sessions
    report: ImportReport
    now: datetime
    actor: str
    default_region: str = "US"

    async def write(self, chunk: list[_Row]) -> None:
        """Import one chunk in one transaction (see the module docstring)."""
        try:
            async with self.sessions.begin() as session:
                plan = await self._plan(session, chunk)
                if not await self._apply(session, plan):
                    raise _Raced  # roll the whole chunk back
            self._count(plan)
            return
        except _Raced:
            pass
        # A concurrent intake created one of these people meanwhile: redo the chunk row by
        # row, each matched again inside the transaction.
        async with self.sessions.begin() as session:
            outcomes = [await self._one(session, row) for row in chunk]
        for outcome in outcomes:
            self._count_one(*outcome)

    async def _plan(self, session: Session, chunk: list[_Row]) -> _Plan:
        wanted = {p for row in chunk for p in row.contact.points()}
        owner: dict[Point, Ref] = dict(await owner_ids(session, wanted))
        email_of: dict[Ref, str | None] = {}
        phone_of: dict[Ref, str | None] = {}
        known = {ref for ref in owner.values() if isinstance(ref, int)}
        if known:
            for lead_id, email, phone in await lead_store.contacts_of(session, known):
                email_of[lead_id], phone_of[lead_id] = email, phone
        plan = _Plan()
        for row in chunk:
            points, email = row.contact.points(), row.contact.email
            chosen: Ref | None = None
            for point in by_strength(points):
                ref = owner.get(point)
                if ref is not None and not shared_phone(point, email_of.get(ref), email):
                    chosen = ref
                    break
            created = chosen is None
            if chosen is None:
                values = build_lead(row.data, row.contact, self.now)
                for column in ("email", "phone"):
                    value = values[column]
                    if value is not None and any(p.value == value and p in owner for p in points):
                        values[column] = None  # another lead's (a shared phone)
                chosen = ("new", len(plan.new))
                plan.new.append(values)
                plan.new_lines.append(row.line)
                email_of[chosen], phone_of[chosen] = values["email"], values["phone"]
            reasons: list[str] = []
            added = 0
            for point in points:
                ref = owner.get(point)
                if ref is None:
                    owner[point] = chosen
                    plan.points.append((chosen, point))
                    added += 1
                    self._fill_primary(plan, chosen, point, email_of, phone_of)
                elif ref != chosen:
                    reason = _reason(point, ref, shared_phone(point, email_of.get(ref), email))
                    plan.conflicts.append((chosen, ref, point, reason))
                    reasons.append(reason)
            outcome = "created" if created else ("updated" if added else "duplicates")
            whose = (
                f"lead {chosen}"
                if isinstance(chosen, int)
                else f"the lead of line {plan.new_lines[chosen[1]]}"
            )
            plan.outcomes.append((row.line, outcome, reasons, f"same person as {whose}"))
        return plan

    @staticmethod
    def _fill_primary(
        plan: _Plan,
        ref: Ref,
        point: Point,
        email_of: dict[Ref, str | None],
        phone_of: dict[Ref, str | None],
    ) -> None:
        column = {Kind.EMAIL: "email", Kind.PHONE: "phone"}.get(point.kind)
        current = email_of if point.kind is Kind.EMAIL else phone_of
        if column is None or current.get(ref) is not None:
            return
        current[ref] = point.value
        if isinstance(ref, int):
            plan.primary.setdefault(ref, {})[column] = point.value
        else:
            plan.new[ref[1]][column] = point.value

    async def _apply(self, session: Session, plan: _Plan) -> bool:
        """Write ``plan``; False (the caller rolls back) when a new lead lost a race."""
        for target in sorted(plan.primary):  # lead rows first, in ascending id
            await lead_store.fill_empty(session, target, plan.primary[target], self.now)
        ids: dict[str, int] = {}
        if plan.new:
            # executemany of one cached statement (a 1,000-row VALUES list would be compiled
            # anew for every chunk, which costs more than running it).
            ids = await lead_store.insert_leads(session, plan.new)
            if len(ids) != len(plan.new):
                return False
            event = {"to_stage": Stage.NEW.value, "actor": self.actor, "at": self.now}
            await record_stage_events(
                session, [{"lead_id": lead_id, **event} for lead_id in ids.values()]
            )
            await emit(
                session,
                *(created_event(i, Stage.NEW.value, self.actor, self.now) for i in ids.values()),
            )

        def lead_id(ref: Ref) -> int:
            return ref if isinstance(ref, int) else ids[plan.new[ref[1]]["token"]]

        if plan.points:
            ordered = sorted(plan.points, key=lambda r: (r[1].kind.value, r[1].value))
            rows = [
                {
                    "lead_id": lead_id(ref),
                    "kind": p.kind.value,
                    "value": p.value,
                    "created_at": self.now,
                }
                for ref, p in ordered
            ]
            if await point_store.add_new_points(session, rows) != len(rows):
                return False  # a concurrent intake took one of these points
            # Audited when an existing lead gains a point (a new lead's are its creation's).
            events = [
                self._event(ref, ADDED, p, "contact point added")
                for ref, p in plan.points
                if isinstance(ref, int)
            ]
            await point_store.record_events(session, events)
        by_lead: dict[int, list[Conflict]] = {}
        for ref, other, point, reason in plan.conflicts:
            by_lead.setdefault(lead_id(ref), []).append(Conflict(point, lead_id(other), reason))
        for target, conflicts in by_lead.items():
            await record_conflicts(session, target, conflicts, actor=self.actor, now=self.now)
        return True

    def _event(self, lead_id: int, action: str, point: Point, reason: str) -> dict[str, Any]:
        return {
            "lead_id": lead_id,
            "action": action,
            "kind": point.kind.value,
            "value": point.value,
            "actor": self.actor,
            "reason": reason,
            "at": self.now,
        }

    async def _one(self, session: Session, row: _Row) -> _Outcome:
        result = await intake(
            session, row.data, default_region=self.default_region, now=self.now, actor=self.actor
        )
        outcome = "created" if result.created else ("updated" if result.added else "duplicates")
        reasons = [c.reason for c in result.conflicts]
        return row.line, outcome, reasons, f"same person as lead {result.lead.id}"

    def _count(self, plan: _Plan) -> None:
        for outcome in plan.outcomes:
            self._count_one(*outcome)

    def _count_one(self, line: int, outcome: str, reasons: list[str], whose: str) -> None:
        if outcome == "duplicates":
            self.report.duplicate(line, whose)
        else:
            setattr(self.report, outcome, getattr(self.report, outcome) + 1)
        if reasons:
            self.report.conflict(line, "; ".join(reasons))


async def import_csv(
    sessions: Sessions,
    path: Path,
    *,
    default_region: str,
    now: datetime,
    actor: str = "import",
    on_progress: Callable[[int], None] = lambda _bytes: None,
) -> ImportReport:
    """Import leads from the CSV file at ``path``; see the module docstring."""
    report = ImportReport()
    writer = _Writer(sessions, report, now, actor, default_region)
    with path.open("rb") as stream:
        report.encoding = detect_encoding(stream.read(SAMPLE_BYTES))
        stream.seek(0)
        lines = decoded_lines(stream, report.encoding, on_progress)
        header = next(lines, "")
        report.delimiter = sniff_delimiter(header)
        reader = csv.DictReader(itertools.chain([header], lines), delimiter=report.delimiter)
        columns = [_column_name(h) for h in reader.fieldnames or []]
        report.ignored_columns = [
            c
            for c in columns
            if c not in LEAD_FIELDS
            and c not in NAME_PARTS
            and not c.startswith(ATTRIBUTION_PREFIXES)
        ]
        if "email" not in columns and "phone" not in columns:
            raise InvalidLeadError(f"{path}: the header has neither an email nor a phone column")
        chunk: list[_Row] = []
        line = reader.line_num + 1  # where the next record starts (quoted fields span lines)
        for record in reader:
            if _blank(record):  # ",,," from a spreadsheet's empty rows: not a lead, not an error
                report.blank += 1
                line = reader.line_num + 1
                continue
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
