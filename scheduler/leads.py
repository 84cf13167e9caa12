"""Lead intake and queries: one person is one lead, whatever the channel they came from.

Intake is idempotent on the normalized email and phone: posting the same lead twice returns
the existing one (and fills in contact fields it did not have yet, never overwriting).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Table, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from scheduler.contacts import normalize_email, normalize_phone
from scheduler.db import insert_or_ignore
from scheduler.errors import InvalidLeadError, NotFoundError
from scheduler.models import Lead, Stage, StageEvent
from scheduler.stages import record_event

_Short = Field(default=None, max_length=200)
_LEADS = cast(Table, Lead.__table__)


class LeadIn(BaseModel):
    """A lead as forms, ads, CRMs and CSV files describe it. Needs an email or a phone."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    name: str | None = _Short
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40)
    company: str | None = _Short
    role: str | None = _Short
    source: str | None = Field(default=None, max_length=100)
    attribution: dict[str, str] = Field(default_factory=dict, max_length=50)
    timezone: str | None = Field(default=None, max_length=64)

    @field_validator("name", "email", "phone", "company", "role", "source", "timezone")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None


@dataclass(frozen=True, slots=True)
class Contact:
    """The normalized identity of a lead: at least one of email and E.164 phone."""

    email: str | None
    phone: str | None

    @classmethod
    def of(cls, data: LeadIn, default_region: str) -> Contact:
        """Normalize ``data``'s email and phone; raise :class:`InvalidLeadError` if unusable."""
        if not data.email and not data.phone:
            raise InvalidLeadError("a lead needs an email or a phone number")
        email = normalize_email(data.email) if data.email else None
        phone = normalize_phone(data.phone, default_region) if data.phone else None
        return cls(email=email, phone=phone)


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """The lead intake returned, and whether it was created by this call."""

    lead: Lead
    created: bool


def new_token() -> str:
    """A short unguessable handle for links we hand out (12 URL-safe characters)."""
    return secrets.token_urlsafe(9)


def build_lead(data: LeadIn, contact: Contact, now: datetime) -> dict[str, Any]:
    """Column values of a new lead in stage ``new`` (shared by intake and CSV import)."""
    return {
        "token": new_token(),
        "name": data.name,
        "email": contact.email,
        "phone": contact.phone,
        "company": data.company,
        "role": data.role,
        "source": data.source,
        "attribution": dict(data.attribution),
        # Only an explicit zone is stored; one derived from the phone is computed when needed
        # (``contacts.timezone_for_phone``), which keeps bulk import fast.
        "timezone": data.timezone,
        "stage": Stage.NEW.value,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }


async def find_by_contact(session: AsyncSession, contact: Contact) -> Lead | None:
    """The lead with this email, else the one with this phone, else None."""
    clauses = []
    if contact.email:
        clauses.append(Lead.email == contact.email)
    if contact.phone:
        clauses.append(Lead.phone == contact.phone)
    rows = (await session.scalars(select(Lead).where(or_(*clauses)))).all()
    by_email = next((lead for lead in rows if contact.email and lead.email == contact.email), None)
    return by_email or (rows[0] if rows else None)


async def intake(
    session: AsyncSession,
    data: LeadIn,
    *,
    default_region: str,
    now: datetime,
    actor: str = "intake",
) -> IntakeResult:
    """Create the lead, or return the existing one with the same email or phone.

    Runs in the caller's transaction; a concurrent intake of the same person that wins the
    race is detected by the unique constraints and returned instead.
    """
    contact = Contact.of(data, default_region)
    existing = await find_by_contact(session, contact)
    if existing is not None:
        await _fill_missing(session, existing, data, contact)
        return IntakeResult(existing, created=False)
    lead = await create_lead(session, build_lead(data, contact, now), actor=actor)
    if lead is None:  # a concurrent intake of the same person won the race
        winner = await find_by_contact(session, contact)
        if winner is None:
            raise InvalidLeadError("this lead's token collided; try again")
        return IntakeResult(winner, created=False)
    return IntakeResult(lead, created=True)


async def create_lead(session: AsyncSession, values: dict[str, Any], *, actor: str) -> Lead | None:
    """Insert a new lead (``build_lead`` values) and its creation audit row, in the caller's
    transaction; the lead, attached to ``session``. None, with nothing written, when a lead
    with the same email, phone (or token) exists.

    Two statements and no savepoint: ``INSERT … ON CONFLICT DO NOTHING RETURNING`` every
    column, from which the ORM object is built without reading the row again.
    """
    statement = insert_or_ignore(session, _LEADS, returning=tuple(_LEADS.c))
    row = (await session.execute(statement, values)).one_or_none()
    if row is None:
        return None
    lead = Lead(**row._asdict())
    make_transient_to_detached(lead)  # it is a stored row now: attach it as one, unchanged
    session.add(lead)
    await record_event(session, lead_id=lead.id, from_stage=None, to_stage=lead.stage,
                       reason=None, actor=actor, at=lead.created_at)  # fmt: skip
    return lead


async def _fill_missing(session: AsyncSession, lead: Lead, data: LeadIn, contact: Contact) -> None:
    """Add details the existing lead lacks; never overwrite what is there."""
    for field in ("name", "company", "role", "source", "timezone"):
        if getattr(lead, field) is None and getattr(data, field):
            setattr(lead, field, getattr(data, field))
    for field in ("email", "phone"):
        value = getattr(contact, field)
        if getattr(lead, field) is None and value:
            taken = await session.scalar(select(Lead.id).where(getattr(Lead, field) == value))
            if taken is None:
                setattr(lead, field, value)
    if data.attribution and not lead.attribution:
        lead.attribution = dict(data.attribution)
    await session.flush()


async def get_lead(session: AsyncSession, lead_id: int) -> Lead:
    """The lead with ``lead_id`` or :class:`NotFoundError`."""
    lead = await session.get(Lead, lead_id)
    if lead is None:
        raise NotFoundError(f"lead {lead_id} does not exist")
    return lead


async def list_leads(
    session: AsyncSession, *, stage: Stage | None = None, after_id: int = 0, limit: int = 50
) -> list[Lead]:
    """Leads in id order after ``after_id`` (keyset paging: stable under concurrent inserts)."""
    query = select(Lead).where(Lead.id > after_id).order_by(Lead.id).limit(limit)
    if stage is not None:
        query = query.where(Lead.stage == stage.value)
    return list((await session.scalars(query)).all())


async def stage_history(session: AsyncSession, lead_id: int) -> list[StageEvent]:
    """Every audited move of a lead, oldest first."""
    query = select(StageEvent).where(StageEvent.lead_id == lead_id).order_by(StageEvent.id)
    return list((await session.scalars(query)).all())
