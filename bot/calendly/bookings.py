"""What a Calendly event changes: bookings, the lead, its touches, its rep.

:func:`apply_event` runs in one transaction with the dedupe record (``ProcessedEvent``,
source ``calendly``, key ``payload.uri`` + event), so a retried delivery changes nothing and
a crash half-way leaves nothing half-done (Calendly retries, and the record is gone too).

- ``invitee.created``: a ``Booking`` keyed by the invitee URI; the lead is found by
  ``tracking.utm_content`` (the lead token our booking links carry), then by email, and
  created from the invitee when neither matches (a booked call is a lead). The lead gets
  ``booked_at``, moves up to ``qualified``, its pending touches are cancelled and its rep
  is told.
- Fields the invitee types (name, answers, time zone) are taken as far as they fit: a name is
  cut to what a lead holds, a time zone that is not a known IANA name is dropped. Only an
  event without a usable invitee URI is an :class:`EventError` (judged unusable).
- ``invitee.canceled``: the booking is canceled, the rep told and a ``rebook`` nudge
  sequence started. A reschedule arrives as canceled (``rescheduled: true``) + created
  (``old_invitee`` set): the cancel half only closes the old booking; the created half
  tells the rep "rescheduled".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.notify import RepOptions, notify_reps
from dialogs.errors import InputError
from scheduler.errors import StoreError, TransitionError
from scheduler.followups.cadence import Cadence
from scheduler.followups.touches import cancel_pending, start_sequence
from scheduler.pipeline.contacts import normalize_email
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.pipeline.outbound_events import Event, EventKind, emit
from scheduler.pipeline.stages import transition
from scheduler.store import Session, events
from scheduler.store import leads as lead_store
from scheduler.store.models import Booking, Lead, Stage

log = logging.getLogger("leadbot.calendly")

CREATED = "invitee.created"
CANCELED = "invitee.canceled"
HANDLED = frozenset({CREATED, CANCELED})
# Booking.invitee_uri is 500 characters; the dedupe key is the URI plus the event name.
MAX_URI = 450
MAX_NAME = 200  # LeadIn.name
MAX_TIMEZONE = 64
# How a booking moves the lead: a booked call confirms intent, so up to qualified.
_TO_QUALIFIED = {
    Stage.NEW: (Stage.CONTACTED, Stage.QUALIFIED),
    Stage.CONTACTED: (Stage.QUALIFIED,),
    Stage.DORMANT: (Stage.CONTACTED, Stage.QUALIFIED),
}


class EventError(InputError, ValueError):
    """The body is not a Calendly event we can read; the message says what is missing."""


@dataclass(frozen=True, slots=True)
class BookingContext:
    """What handling needs from the service: rep notification options and the cadence."""

    reps: RepOptions = field(default_factory=RepOptions)
    cadence: Cadence | None = None
    default_region: str = "US"


@dataclass(slots=True)
class BookingOutcome:
    """What happened: ``processed``, ``duplicate`` or ``ignored``, and outbox rows to send."""

    status: str
    outbox_ids: list[int] = field(default_factory=list)
    lead_id: int | None = None


async def apply_event(
    session: Session, body: Mapping[str, Any], *, now: datetime, ctx: BookingContext
) -> BookingOutcome:
    """Apply one verified Calendly webhook body, in the caller's transaction."""
    event = body.get("event")
    payload = body.get("payload")
    if not isinstance(event, str) or not isinstance(payload, Mapping):
        raise EventError("a Calendly event needs 'event' and a 'payload' object")
    if event not in HANDLED:
        return BookingOutcome("ignored")
    uri = payload.get("uri")
    if not isinstance(uri, str) or not uri:
        raise EventError("payload.uri (the invitee) is missing")
    if len(uri) > MAX_URI:
        raise EventError(f"payload.uri is longer than {MAX_URI} characters")
    if not await events.first_time(session, "calendly", f"{uri} {event}", now):
        return BookingOutcome("duplicate")
    lead = await _match_lead(session, payload, now=now, ctx=ctx)
    if lead is not None:
        lead = await lead_store.lock_lead(session, lead.id)
    if event == CREATED:
        return await _created(session, uri, payload, lead, now=now, ctx=ctx)
    return await _canceled(session, uri, payload, lead, now=now, ctx=ctx)


async def _created(
    session: Session,
    uri: str,
    payload: Mapping[str, Any],
    lead: Lead | None,
    *,
    now: datetime,
    ctx: BookingContext,
) -> BookingOutcome:
    booking = await _booking(session, uri, payload, lead, status="active", now=now)
    if booking.status != "active" or lead is None:
        # Canceled before this (late) created arrived: nothing is booked any more.
        return BookingOutcome("processed", lead_id=lead.id if lead else None)
    lead.booked_at = now
    timezone = _timezone(payload.get("timezone"))
    if not lead.timezone and timezone:
        lead.timezone = timezone
    await _move_to_qualified(session, lead, now)
    await cancel_pending(session, lead.id, reason="booked a call", now=now)
    rescheduled = bool(payload.get("old_invitee"))
    booked_event = _meeting_event(EventKind.MEETING_BOOKED, booking, lead, payload, now)
    booked = await emit(session, booked_event)
    start = _when(booking.start_time)
    summary = f"{'Call rescheduled to' if rescheduled else 'Call booked for'} {start}"
    ids = await notify_reps(
        session,
        lead=lead,
        kind="booked",
        summary=summary,
        details=_details(payload),
        now=now,
        options=ctx.reps,
    )
    return BookingOutcome("processed", ids + booked, lead.id)


async def _canceled(
    session: Session,
    uri: str,
    payload: Mapping[str, Any],
    lead: Lead | None,
    *,
    now: datetime,
    ctx: BookingContext,
) -> BookingOutcome:
    booking = await _booking(session, uri, payload, lead, status="canceled", now=now)
    booking.status = "canceled"
    booking.canceled_at = booking.canceled_at or now
    if lead is None:
        return BookingOutcome("processed")
    still_booked = await events.active_booking_of(session, lead.id)
    if still_booked is None:
        lead.booked_at = None
    if payload.get("rescheduled"):
        # Its created half tells the rep, and sends meeting.booked with ``rescheduled_from``.
        return BookingOutcome("processed", lead_id=lead.id)
    cancellation = payload.get("cancellation") or {}
    reason = cancellation.get("reason") if isinstance(cancellation, Mapping) else None
    reason = reason[:500] if isinstance(reason, str) else None
    summary = f"Call for {_when(booking.start_time)} canceled" + (f": {reason}" if reason else "")
    ids = await notify_reps(
        session,
        lead=lead,
        kind="canceled",
        summary=summary,
        details=_details(payload),
        now=now,
        options=ctx.reps,
    )
    canceled = _meeting_event(EventKind.MEETING_CANCELED, booking, lead, payload, now)
    ids += await emit(session, canceled)
    if still_booked is None and lead.opted_out_at is None:
        if ctx.cadence is None:
            log.warning("lead %s canceled, but no cadence is loaded: no rebook nudge", lead.id)
        else:
            # One nudge per canceled booking: a lead who books and cancels again gets
            # another (the cycle keeps the touches of each booking apart).
            await start_sequence(
                session, lead.id, "rebook", cadence=ctx.cadence, now=now, cycle=booking.id
            )
    return BookingOutcome("processed", ids, lead.id)


def _meeting_event(
    kind: EventKind, booking: Booking, lead: Lead, payload: Mapping[str, Any], now: datetime
) -> Event:
    """``meeting.booked`` / ``meeting.canceled`` of ``booking`` (once per booking each);
    ``payload`` is the Calendly event's."""
    cancellation = payload.get("cancellation")
    data = {
        "booking_id": booking.id,
        "start_time": booking.start_time,
        "end_time": booking.end_time,
        "timezone": booking.timezone,
        "calendly_invitee_uri": booking.invitee_uri,
        "calendly_event_uri": booking.event_uri,
        "rescheduled_from": _short(payload.get("old_invitee"), MAX_URI),
    }
    if kind is EventKind.MEETING_CANCELED:
        reason = cancellation.get("reason") if isinstance(cancellation, Mapping) else None
        data["reason"] = _short(reason, 500)
    fact = f"booking:{booking.id}:{kind.value}"
    return Event(kind, fact, lead.id, now, data)


async def _match_lead(
    session: Session, payload: Mapping[str, Any], *, now: datetime, ctx: BookingContext
) -> Lead | None:
    tracking = payload.get("tracking") or {}
    token = tracking.get("utm_content") if isinstance(tracking, Mapping) else None
    email = payload.get("email")
    lead = None
    if isinstance(token, str) and token:
        lead = await lead_store.lead_by_token(session, token)
    if lead is not None:
        if isinstance(email, str) and lead.email and lead.email != email.strip().lower():
            # A forwarded link keeps our utm_content: the token wins, but say so.
            log.info("booking for lead %s was made with another email", lead.id)
        return lead
    if not isinstance(email, str) or not email.strip():
        return None
    try:
        clean = normalize_email(email)
    except StoreError:
        log.warning("Calendly invitee has an unusable email; booking kept without a lead")
        return None
    lead = await lead_store.lead_by_email(session, clean)
    if lead is not None:
        return lead
    name = payload.get("name")
    # Typed by the invitee: cut to what a lead holds rather than refuse the booking.
    name = name.strip()[:MAX_NAME] if isinstance(name, str) else None
    data = LeadIn(name=name or None, email=clean, source="calendly")
    result = await intake(
        session, data, default_region=ctx.default_region, now=now, actor="calendly"
    )
    return result.lead


async def _booking(
    session: Session,
    uri: str,
    payload: Mapping[str, Any],
    lead: Lead | None,
    *,
    status: str,
    now: datetime,
) -> Booking:
    """The booking of this invitee, created (with ``status``) if it is the first we hear."""
    event = payload.get("scheduled_event") or {}
    if not isinstance(event, Mapping):
        event = {}
    return await events.booking(
        session,
        {
            "invitee_uri": uri,
            "lead_id": lead.id if lead else None,
            "event_uri": _short(event.get("uri"), 500),
            "status": status,
            "start_time": _parse_time(event.get("start_time")),
            "end_time": _parse_time(event.get("end_time")),
            "timezone": _timezone(payload.get("timezone")),
            "payload": dict(payload),
            "created_at": now,
            "canceled_at": now if status == "canceled" else None,
        },
    )


async def _move_to_qualified(session: Session, lead: Lead, now: datetime) -> None:
    await session.flush()  # the refresh below must not drop our unflushed changes
    seen = Stage(lead.stage)
    for stage in _TO_QUALIFIED.get(seen, ()):
        try:
            # Fenced on the stage read under the lock: never a move decided on another.
            await transition(
                session,
                lead.id,
                stage,
                reason="booked a call",
                actor="calendly",
                now=now,
                expected_from=seen,
            )
            seen = stage
        except TransitionError as exc:  # moved meanwhile: the booking still counts
            log.info("lead %s: not moved to %s after booking (%s)", lead.id, stage, exc)
            return
    await lead_store.reload_lead(session, lead)


def _details(payload: Mapping[str, Any]) -> dict[str, Any]:
    event = payload.get("scheduled_event")
    event = event if isinstance(event, Mapping) else {}
    location = event.get("location")
    location = location if isinstance(location, Mapping) else {}
    answers = payload.get("questions_and_answers")
    return {
        "event": _clip(event.get("name"), 500),
        "start_time": _short(event.get("start_time"), 100),
        "invitee": payload.get("uri"),
        "invitee_email": _short(payload.get("email"), 320),
        "timezone": _timezone(payload.get("timezone")),
        "join_url": _short(location.get("join_url"), 2000),
        "answers": [
            f"{_clip(qa.get('question'), 500)}: {_clip(qa.get('answer'), 2000)}"
            for qa in (answers if isinstance(answers, list) else [])[:50]
            if isinstance(qa, Mapping)
        ],
    }


def _short(value: Any, limit: int) -> str | None:
    """``value`` when it is a string of at most ``limit`` characters, else None."""
    return value if isinstance(value, str) and len(value) <= limit else None


def _clip(value: Any, limit: int) -> str | None:
    """A string cut to ``limit`` characters (what the invitee typed), None if not a string."""
    return value[:limit] if isinstance(value, str) else None


def _timezone(value: Any) -> str | None:
    """An IANA time zone name the invitee's browser reported, or None if it is not one."""
    if not isinstance(value, str) or not value or len(value) > MAX_TIMEZONE:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return value


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _when(start: datetime | None) -> str:
    return start.strftime("%Y-%m-%d %H:%M UTC") if start else "an unknown time"
