"""Lead intake and queries: one person is one lead, whatever the channel they came from.

Intake is idempotent on every contact point (``scheduler.pipeline.identity``): posting the same
lead twice returns the existing one (and fills in fields it did not have yet, never overwriting);
new contact points are added to it, and points that belong to another lead are recorded as
conflicts for a human (returned in :class:`IntakeResult`), never dropped.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from scheduler.errors import InvalidLeadError, NotFoundError
from scheduler.pipeline.contacts import normalize_email, normalize_phone
from scheduler.pipeline.identity import (
    Conflict,
    Point,
    Resolution,
    attach,
    for_lead,
    points_of,
    resolve,
)
from scheduler.pipeline.stages import record_event
from scheduler.store import Session, events, notes
from scheduler.store import leads as lead_store
from scheduler.store.models import Lead, Stage, StageEvent

_Short = Field(default=None, max_length=200)
MAX_MESSAGE_CHARS = 5000
MAX_ANSWERS = 50
# A question as the form names it (its text, or the script's slot id) and its answer.
Question = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Answer = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


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
    # What the prospect wrote in the form's free-text field, and their answer to each of its
    # questions (keyed by the question's text or the dialog script's slot id). Stored as a
    # "form" note on the lead's timeline (:func:`record_form`); the email qualifier reads them.
    message: str | None = Field(default=None, max_length=MAX_MESSAGE_CHARS)
    answers: dict[Question, Answer] = Field(default_factory=dict, max_length=MAX_ANSWERS)

    @field_validator("name", "email", "phone", "company", "role", "source", "timezone", "message")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("answers")
    @classmethod
    def _drop_blank_answers(cls, value: dict[str, str]) -> dict[str, str]:
        return {question: answer for question, answer in value.items() if answer}


@dataclass(frozen=True, slots=True)
class Contact:
    """The normalized identity of a lead: at least one of email and E.164 phone."""

    email: str | None
    phone: str | None

    @classmethod
    def of(cls, data: LeadIn, default_region: str, *, required: bool = True) -> Contact:
        """Normalize ``data``'s email and phone; raise :class:`InvalidLeadError` if unusable
        (or, when ``required``, if there is neither)."""
        if required and not data.email and not data.phone:
            raise InvalidLeadError("a lead needs an email or a phone number")
        email = normalize_email(data.email) if data.email else None
        phone = normalize_phone(data.phone, default_region) if data.phone else None
        return cls(email=email, phone=phone)

    def points(self) -> list[Point]:
        """The contact points this contact gives."""
        return points_of(email=self.email, phone=self.phone)


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """The lead intake returned, whether it was created by this call, and the contact
    points it carried that belong to other leads (recorded for a human)."""

    lead: Lead
    created: bool
    conflicts: tuple[Conflict, ...] = ()
    added: tuple[Point, ...] = ()  # contact points an existing lead gained


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


async def find_by_contact(session: Session, contact: Contact) -> Lead | None:
    """The lead this contact identifies (``scheduler.pipeline.identity`` rules), else None."""
    return (await resolve(session, contact.points())).lead


async def intake(
    session: Session,
    data: LeadIn,
    *,
    default_region: str,
    now: datetime,
    actor: str = "intake",
    points: tuple[Point, ...] = (),
    values: dict[str, Any] | None = None,
) -> IntakeResult:
    """Create the lead, or return the existing one any of its contact points identifies.

    ``points`` adds contact points beyond ``data``'s email and phone (a WhatsApp id, a
    BSUID); with them, ``data`` may have neither. ``values`` overrides columns of a lead
    created here. Runs in the caller's transaction; a concurrent intake of the same person
    that wins the race is detected by the unique constraints and returned instead.
    """
    contact = Contact.of(data, default_region, required=not points)
    wanted = [*contact.points(), *(p for p in points if p not in contact.points())]
    # Each lost race means a concurrent intake committed a lead holding one of our contact
    # points (visible on the next round), so a round per point, plus one, always ends.
    for _attempt in range(len(wanted) + 1):
        resolution = await resolve(session, wanted)
        existing = resolution.lead
        if existing is not None:
            _fill_fields(existing, data)
            attached = await attach(
                session, existing, resolution, actor=actor, reason="contact point added", now=now
            )
            await record_form(session, existing.id, data, actor=actor, now=now)
            await session.flush()
            return IntakeResult(
                existing,
                created=False,
                conflicts=tuple(attached.conflicts),
                added=tuple(attached.added),
            )
        row = build_lead(data, contact, now) | (values or {})
        taken = {c.point for c in resolution.conflicts}
        # A primary column another lead holds (a shared phone) stays with that lead.
        if contact.email and any(p.value == contact.email for p in taken):
            row["email"] = None
        if contact.phone and any(p.value == contact.phone for p in taken):
            row["phone"] = None
        lead = await create_lead(session, row, actor=actor)
        if lead is None:  # a concurrent intake of the same person won the race: theirs
            continue
        attached = await attach(
            session, lead, resolution, actor=actor, reason="new lead", now=now, audit=False
        )
        await record_form(session, lead.id, data, actor=actor, now=now)
        return IntakeResult(lead, created=True, conflicts=tuple(attached.conflicts))
    raise InvalidLeadError("the lead could not be stored (its token collided); try again")


async def record_form(
    session: Session, lead_id: int, data: LeadIn, *, actor: str, now: datetime
) -> None:
    """Keep what the prospect wrote (``data.message``, ``data.answers``) as a "form" note on
    the lead, in the caller's transaction; nothing when the submission had neither. Every
    submission is its own note: a second form sent later is news, not a duplicate."""
    if not data.message and not data.answers:
        return
    await notes.add_note(
        session,
        lead_id,
        kind=notes.NoteKind.FORM,
        author=actor,
        body=data.message or "",
        data={"answers": dict(data.answers), "source": data.source},
        now=now,
    )


@dataclass(frozen=True, slots=True)
class FormSubmission:
    """One form a lead sent: the free text and the answers per question."""

    message: str
    answers: dict[str, str]
    source: str | None
    at: datetime


async def form_submissions(session: Session, lead_id: int) -> list[FormSubmission]:
    """What the lead wrote in forms (:func:`record_form`), oldest first."""
    found = await notes.list_notes(session, lead_id, kind=notes.NoteKind.FORM)
    return [
        FormSubmission(
            message=note.body,
            answers={str(k): str(v) for k, v in (note.data or {}).get("answers", {}).items()},
            source=(note.data or {}).get("source"),
            at=note.created_at,
        )
        for note in reversed(found)
    ]


async def lead_seen_at(
    session: Session,
    points: Sequence[Point],
    *,
    known: int | None,
    owned: Mapping[Point, int],
    describe: Callable[[], LeadIn],
    values: dict[str, Any],
    default_region: str,
    now: datetime,
    actor: str,
    reason: str,
) -> tuple[Lead, bool]:
    """The lead of a person seen at ``points`` on a channel, loaded in ``session``, and
    whether this call created it; in the caller's transaction.

    ``known`` and ``owned`` are what a read before the transaction found (the lead of the
    strongest point, and the points that had an owner). A known lead gains the points it
    lacks (audited with ``reason``); points another lead owns are recorded as conflicts.
    Without one, the lead is made from ``describe()`` (``values`` override its columns):
    inserted straight away when nobody owned any point (a conflict then means someone
    created it since, and :func:`intake` finds it), else through :func:`intake`.
    """
    if known is not None:
        lead = await lead_store.find_lead(session, known)
        if lead is not None:
            if any(owned.get(p) != lead.id for p in points):
                resolution = await for_lead(session, lead, points)
                await attach(session, lead, resolution, actor=actor, reason=reason, now=now)
            return lead, False
    data = describe()
    if known is None and not owned:
        row = build_lead(data, Contact.of(data, default_region, required=False), now)
        lead = await create_lead(session, row | values, actor=actor)
        if lead is not None:
            await attach(
                session,
                lead,
                Resolution(lead, add=list(points)),
                actor=actor,
                reason="new lead",
                now=now,
                audit=False,
            )
            return lead, True
    result = await intake(
        session,
        data,
        default_region=default_region,
        now=now,
        actor=actor,
        points=tuple(points),
        values=values,
    )
    return result.lead, result.created


async def create_lead(session: Session, values: dict[str, Any], *, actor: str) -> Lead | None:
    """Insert a new lead (``build_lead`` values) and its creation audit row, in the caller's
    transaction; the lead, attached to ``session``. None, with nothing written, when a lead
    with the same email, phone (or token) exists.

    Two statements and no savepoint (:func:`scheduler.store.leads.insert_lead`).
    """
    lead = await lead_store.insert_lead(session, values)
    if lead is None:
        return None
    await record_event(
        session,
        lead_id=lead.id,
        from_stage=None,
        to_stage=lead.stage,
        reason=None,
        actor=actor,
        at=lead.created_at,
    )
    return lead


def _fill_fields(lead: Lead, data: LeadIn) -> None:
    """Add details the existing lead lacks; never overwrite what is there (contact points
    are added by ``identity.attach``)."""
    for field in ("name", "company", "role", "source", "timezone"):
        if getattr(lead, field) is None and getattr(data, field):
            setattr(lead, field, getattr(data, field))
    if data.attribution and not lead.attribution:
        lead.attribution = dict(data.attribution)


async def get_lead(session: Session, lead_id: int) -> Lead:
    """The lead with ``lead_id`` or :class:`NotFoundError`."""
    lead = await lead_store.find_lead(session, lead_id)
    if lead is None:
        raise NotFoundError(f"lead {lead_id} does not exist")
    return lead


async def list_leads(
    session: Session, *, stage: Stage | None = None, after_id: int = 0, limit: int = 50
) -> list[Lead]:
    """Leads in id order after ``after_id`` (keyset paging: stable under concurrent inserts)."""
    value = stage.value if stage is not None else None
    return await lead_store.list_leads(session, stage=value, after_id=after_id, limit=limit)


async def stage_history(session: Session, lead_id: int) -> list[StageEvent]:
    """Every audited move of a lead, oldest first."""
    return await events.stage_history(session, lead_id)
