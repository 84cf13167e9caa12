"""Outbound events for automation tools (n8n, Zapier, Make): what happened, as outbox rows.

An event is emitted *in the transaction of the change it reports* (a stage move, a new lead, a
booking, a hand-off request), as one outbox row per endpoint whose filter takes its kind. So
an event is never lost (it commits with the change) and never sent for a change that rolled
back (it rolls back with it). Delivery, signing and retries are the outbox's and the events
channel's (:mod:`crm_sync.events_channel`, outbox channel :data:`CHANNEL`).

Each row's key is ``event:<endpoint>:lead:<id>:<what happened>`` (e.g.
``event:n8n:lead:42:stage:1234`` for stage audit row 1234 of lead 42): emitting the same
fact twice stores one row per endpoint. The event id (the ``webhook-id`` receivers dedupe on)
is derived from the same fact, so it is stable across retries and the same at every
endpoint.

The rows are inserted wherever the change happens, which may be before the change takes the
locks that come earlier in the store's lock order (touches, after a stage move): safe, since a
new row whose key only this change can produce is never waited for by anyone else.

The body every endpoint gets: ``{"id", "type", "occurred_at", "lead": {id, stage, name,
email, phone, company, source, owner_rep_id, qualification}, "data": {…}}`` where ``data``
is the kind's own: ``lead.created`` {stage, actor}; ``lead.stage_changed`` and
``lead.qualified`` (a move into qualified, from any path) {from, to, reason, actor};
``meeting.booked`` / ``meeting.canceled`` {booking_id, start_time, end_time, timezone,
calendly_invitee_uri, calendly_event_uri, rescheduled_from, reason (canceled)};
``conversation.handoff_requested`` {channel, requested_at, turn}; ``lead.note_added`` (fact
``note:<note id>``; emitted by :mod:`scheduler.intake.email_notes` for a note read from an
email reply) {note_id, kind ("email"), body (the summary), summary, next_step, budget and
timeline ({text, evidence} or null), objections ([{kind, evidence}]), sentiment (positive,
neutral, negative, mixed; null when no model read it), facts ({slot: {value, text,
evidence}} the rules interpreter found), source ("llm" | "rules"), prompt_version,
injection_suspected, notes, message_id, email_message_id, subject}. ``lead`` is read when
the event is stored (an erased lead shows only id and stage).

The endpoints are set once per process by :func:`configure` (``bot.channels.events.
configure_events``: the service and ``leadbot leads import``): the emit points sit deep in
the pipeline (the stage machine) and need only the endpoints' names and filters.

Other consumers of the same facts (the CRM mirror, Meta's Conversions API: :mod:`crm_sync`)
register as :class:`Subscriber` (:func:`subscribe`): each turns the events into outbox rows
of its own channel, stored in the same transaction, so they share the guarantee (never lost,
never for a change that rolled back).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from scheduler.store import Session
from scheduler.store.event_deliveries import lead_facts
from scheduler.store.outbox import enqueue_many, outbox_row

CHANNEL = "events"
"""The outbox channel name of event deliveries."""
_ID_NAMESPACE = uuid.UUID("6f1c2a8e-5b3d-4c2e-9a41-0e7d3b9c5a10")


class EventKind(StrEnum):
    """The kinds of events endpoints can subscribe to."""

    LEAD_CREATED = "lead.created"
    LEAD_STAGE_CHANGED = "lead.stage_changed"
    LEAD_QUALIFIED = "lead.qualified"
    MEETING_BOOKED = "meeting.booked"
    MEETING_CANCELED = "meeting.canceled"
    HANDOFF_REQUESTED = "conversation.handoff_requested"
    NOTE_ADDED = "lead.note_added"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One receiver: a name (unique; in outbox keys), its URL, its ``whsec_`` secret and the
    event kinds it wants (empty: all of them)."""

    name: str
    url: str
    secret: str
    events: frozenset[str] = frozenset()

    def wants(self, kind: str) -> bool:
        """Whether this endpoint's filter takes events of ``kind``."""
        return not self.events or kind in self.events


class Subscriber(Protocol):
    """Another consumer of events: turns them into outbox rows of its own channel.

    Called inside the transaction of the change; the rows' keys must be deterministic (the
    same fact stores one row) and name the lead (``...:lead:<id>:...``) when about one, so an
    erasure finds them."""

    async def outbox_rows(self, session: Session, events: Sequence[Event]) -> list[dict[str, Any]]:
        """The outbox rows (:func:`scheduler.store.outbox.outbox_row`) for ``events``."""
        ...


@dataclass(slots=True)
class _Routes:
    endpoints: tuple[Endpoint, ...] = ()
    subscribers: tuple[Subscriber, ...] = ()


_ROUTES = _Routes()


def configure(endpoints: Iterable[Endpoint]) -> None:
    """Set the endpoints events go to (the composition root, once at startup; tests)."""
    _ROUTES.endpoints = tuple(endpoints)


def subscribe(subscribers: Iterable[Subscriber]) -> None:
    """Set the other consumers of events (the composition root, once at startup; tests)."""
    _ROUTES.subscribers = tuple(subscribers)


def endpoints() -> tuple[Endpoint, ...]:
    """The configured endpoints."""
    return _ROUTES.endpoints


def event_id(fact: str) -> str:
    """The stable event id of ``fact`` (the ``webhook-id``): the same on every retry."""
    return "evt_" + uuid.uuid5(_ID_NAMESPACE, fact).hex


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened. ``fact`` names it uniquely (``stage:1234``, ``booking:7:...``)."""

    kind: EventKind
    fact: str
    lead_id: int | None
    occurred_at: datetime
    data: Mapping[str, Any]


async def emit(session: Session, *events: Event) -> list[int]:
    """Store ``events`` for every endpoint that wants them and every subscriber, in the
    caller's transaction; the ids of the outbox rows stored now (none when nobody listens)."""
    rows = await _endpoint_rows(session, events)
    for subscriber in _ROUTES.subscribers:
        rows += await subscriber.outbox_rows(session, events)
    if not rows:
        return []
    _, new = await enqueue_many(session, rows)
    return new


async def _endpoint_rows(session: Session, events: Sequence[Event]) -> list[dict[str, Any]]:
    targets = _ROUTES.endpoints
    wanted = [(e, [p for p in targets if p.wants(e.kind)]) for e in events]
    wanted = [(e, ps) for e, ps in wanted if ps]
    if not wanted:
        return []
    leads = await lead_facts(session, sorted({e.lead_id for e, _ in wanted if e.lead_id}))
    return [
        outbox_row(
            key=_key(endpoint, event),
            channel=CHANNEL,
            recipient=endpoint.url,
            # lead_id stays None: an event is not a message in the lead's conversation.
            payload=_payload(endpoint, event, leads.get(event.lead_id or 0)),
            now=event.occurred_at,
        )
        for event, ps in wanted
        for endpoint in ps
    ]


def _key(endpoint: Endpoint, event: Event) -> str:
    """The row's key; one about a lead names it (erasure finds the row by it)."""
    about = f"lead:{event.lead_id}:" if event.lead_id is not None else ""
    return f"event:{endpoint.name}:{about}{event.fact}"


def _payload(endpoint: Endpoint, event: Event, lead: Mapping[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": event_id(event.fact),
        "type": event.kind.value,
        "occurred_at": _iso(event.occurred_at),
        "lead": dict(lead) if lead is not None else None,
        "data": _jsonable(event.data),
    }
    return {"endpoint": endpoint.name, "event": body, "text": f"{event.kind.value} ({event.fact})"}


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with datetimes as ISO strings (the payload is a JSON column)."""
    return {k: _iso(v) if isinstance(v, datetime) else v for k, v in data.items()}


def created_event(lead_id: int, stage: str, actor: str, at: datetime) -> Event:
    """``lead.created`` of a new lead (once per lead: the fact is the lead's id)."""
    data = {"stage": stage, "actor": actor}
    return Event(EventKind.LEAD_CREATED, f"lead:{lead_id}", lead_id, at, data)


def stage_events(
    *,
    audit_id: int,
    lead_id: int,
    from_stage: str | None,
    to_stage: str,
    reason: str | None,
    actor: str,
    at: datetime,
) -> Sequence[Event]:
    """The events of one stage audit row: ``lead.created`` for a creation (no from stage),
    else ``lead.stage_changed``, plus ``lead.qualified`` when the lead reached qualified."""
    if from_stage is None:
        return [created_event(lead_id, to_stage, actor, at)]
    change = {"from": from_stage, "to": to_stage, "reason": reason, "actor": actor}
    found = [Event(EventKind.LEAD_STAGE_CHANGED, f"stage:{audit_id}", lead_id, at, change)]
    if to_stage == "qualified":
        found.append(Event(EventKind.LEAD_QUALIFIED, f"qualified:{audit_id}", lead_id, at, change))
    return found
