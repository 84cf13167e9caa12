"""Identity: every way to reach a person (a contact point) belongs to exactly one lead.

A contact point is ``(kind, value)``: ``email`` (normalized), ``phone`` (E.164), ``whatsapp``
(``+`` and the ``wa_id`` exactly as Meta sends it: the address replies go to) or ``bsuid``
(WhatsApp's business-scoped user id, for people who share only a username). The pair is
unique in ``contact_points``; ``leads.email`` and ``leads.phone`` stay the lead's primary
contacts and are always contact points of that lead too.

Intake of any channel calls :func:`resolve` with the points it knows, then either creates a
lead or takes the chosen one, and calls :func:`attach` to add the points the lead lacks. The
rules (:func:`resolve`):

- Email is the strongest key: a lead owning the email is the person.
- Otherwise a lead owning a channel id (BSUID, WhatsApp id) or the phone is the person,
  except that a phone never merges two different emails: a shared company phone
  (switchboard) reaches several people. If the lead owning the phone has an email and the
  newcomer another one, the newcomer becomes a lead of its own; the phone stays with the
  first lead and is recorded as shared (a conflict row).
- A point owned by a lead other than the chosen one is never moved or dropped: it is
  recorded in ``identity_conflicts`` for a human, with an audit event on the chosen lead.

Every added point writes an ``identity_events`` row (actor, reason). All three tables cascade
on lead deletion (erasure removes them with the lead). Statements run in the caller's
transaction and only insert rows or update the chosen lead (lock order: lead first).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from scheduler.store import Session
from scheduler.store import contact_points as point_store
from scheduler.store import leads as lead_store
from scheduler.store.contact_points import BSUID_SENDER, Kind
from scheduler.store.models import Lead

ADDED = "contact_point_added"
CONFLICT = "conflict"
__all__ = [  # Kind and BSUID_SENDER live with the contact points' table, in the store
    "ADDED",
    "BSUID_SENDER",
    "CONFLICT",
    "Attached",
    "Conflict",
    "Kind",
    "Point",
    "Resolution",
    "attach",
    "belongs_reason",
    "by_strength",
    "decide",
    "for_lead",
    "owner_ids",
    "owners",
    "points_for_lead",
    "points_of",
    "record_conflicts",
    "resolve",
    "shared_phone",
    "shared_reason",
    "whatsapp_addresses",
]


_PRIORITY = {kind: rank for rank, kind in enumerate(Kind)}


@dataclass(frozen=True, slots=True)
class Point:
    """One contact point, already normalized by the caller."""

    kind: Kind
    value: str


@dataclass(frozen=True, slots=True)
class Conflict:
    """A point another lead owns: recorded for a human instead of moved or dropped."""

    point: Point
    other_lead_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class Attached:
    """What :func:`attach` wrote: the points added to the lead, the conflicts recorded."""

    added: list[Point]
    conflicts: list[Conflict]


@dataclass(slots=True)
class Resolution:
    """What :func:`resolve` decided: the lead that is this person (None: a new one), the
    points to add to it, and the points that stay with other leads."""

    lead: Lead | None
    add: list[Point] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)


def points_of(
    *,
    email: str | None = None,
    phone: str | None = None,
    whatsapp: str | None = None,
    bsuid: str | None = None,
) -> list[Point]:
    """The points among these normalized values that are set."""
    found = (
        (Kind.EMAIL, email),
        (Kind.PHONE, phone),
        (Kind.WHATSAPP, whatsapp),
        (Kind.BSUID, bsuid),
    )
    return [Point(kind, value) for kind, value in found if value]


async def owner_ids(session: Session, points: Iterable[Point]) -> dict[Point, int]:
    """The id of the lead owning each point that has one: by ``contact_points``, and by the
    leads' primary ``email`` / ``phone`` columns (which are points of their lead too)."""
    wanted = set(points)
    if not wanted:
        return {}
    by_kind: dict[Kind, set[str]] = {}
    for point in wanted:
        by_kind.setdefault(point.kind, set()).add(point.value)
    rows = await point_store.owners(session, {k.value: v for k, v in by_kind.items()})
    found: dict[Point, int] = {}
    for kind, value, lead_id in rows:
        point = Point(Kind(kind), value)
        if point in wanted:
            found[point] = lead_id
    emails = [p.value for p in wanted if p.kind is Kind.EMAIL and p not in found]
    phones = [p.value for p in wanted if p.kind is Kind.PHONE and p not in found]
    if emails or phones:
        for lead_id, email, phone in await lead_store.by_primary_contacts(session, emails, phones):
            for point in points_of(email=email, phone=phone):
                if point in wanted:
                    found.setdefault(point, lead_id)
    return found


async def owners(session: Session, points: Iterable[Point]) -> dict[Point, Lead]:
    """Like :func:`owner_ids`, with the leads loaded in ``session``."""
    ids = await owner_ids(session, points)
    if not ids:
        return {}
    found = await lead_store.leads_by_ids(session, ids.values())
    leads = {lead.id: lead for lead in found}
    return {point: leads[lead_id] for point, lead_id in ids.items() if lead_id in leads}


def decide(points: Sequence[Point], owned: dict[Point, Lead]) -> Resolution:
    """Apply the rules of the module docstring to ``points`` and their ``owned`` leads."""
    email = next((p.value for p in points if p.kind is Kind.EMAIL), None)
    chosen: Lead | None = None
    for point in by_strength(points):
        lead = owned.get(point)
        if lead is None:
            continue
        if _switchboard(point, lead, email):
            continue  # the phone of someone else with another email
        chosen = lead
        break
    result = Resolution(chosen)
    for point in points:
        lead = owned.get(point)
        if lead is None:
            result.add.append(point)
        elif chosen is None or lead.id != chosen.id:
            if _switchboard(point, lead, email):
                reason = shared_reason(lead.id)
            else:
                result.conflicts.append(_belongs(point, lead.id))
                continue
            result.conflicts.append(Conflict(point, lead.id, reason))
    return result


def _order(point: Point) -> tuple[str, str]:
    # Unique-index waits between two transactions inserting the same points cannot deadlock
    # when every writer inserts them in one order.
    return (point.kind.value, point.value)


def _belongs(point: Point, lead_id: int) -> Conflict:
    return Conflict(point, lead_id, belongs_reason(point, lead_id))


def _switchboard(point: Point, lead: Lead, email: str | None) -> bool:
    return shared_phone(point, lead.email, email)


def shared_phone(point: Point, owner_email: str | None, email: str | None) -> bool:
    """True when ``point`` is a phone whose owner has an email other than ``email``: the
    phone of someone else (a switchboard), which must not merge two people."""
    return point.kind is Kind.PHONE and email is not None and owner_email not in (None, email)


def shared_reason(owner_id: int) -> str:
    """The conflict reason of a shared phone."""
    return f"shared phone: lead {owner_id} has another email"


def belongs_reason(point: Point, owner_id: int) -> str:
    """The conflict reason of a point another lead owns."""
    return f"{point.kind.value} belongs to lead {owner_id}"


def by_strength(points: Iterable[Point]) -> list[Point]:
    """``points``, strongest kind first (email, BSUID, WhatsApp id, phone)."""
    return sorted(points, key=lambda p: _PRIORITY[p.kind])


async def resolve(session: Session, points: Sequence[Point]) -> Resolution:
    """Find the lead these points identify (see the module docstring)."""
    return decide(points, await owners(session, points))


async def for_lead(session: Session, lead: Lead, points: Sequence[Point]) -> Resolution:
    """``points`` seen for a lead already known: the ones nobody owns are to be added, the
    ones another lead owns are conflicts."""
    owned = await owner_ids(session, points)
    result = Resolution(lead)
    for point in points:
        other = owned.get(point)
        if other is None:
            result.add.append(point)
        elif other != lead.id:
            result.conflicts.append(_belongs(point, other))
    return result


async def attach(
    session: Session,
    lead: Lead,
    resolution: Resolution,
    *,
    actor: str,
    reason: str,
    now: datetime,
    audit: bool = True,
) -> Attached:
    """Add ``resolution.add`` to ``lead`` (filling its primary email/phone when empty) and
    record ``resolution.conflicts``; returns the points added and every conflict recorded,
    including points a concurrent intake took meanwhile. ``audit=False`` (a lead created
    with these points: its creation is the audit row) writes no event per point."""
    conflicts = list(resolution.conflicts)
    added: set[Point] = set()
    if resolution.add:
        rows = [
            {"lead_id": lead.id, "kind": p.kind.value, "value": p.value, "created_at": now}
            for p in sorted(resolution.add, key=_order)
        ]
        inserted = await point_store.add_points(session, rows)
        added = {Point(Kind(k), v) for k, v in inserted}
        lost = [p for p in resolution.add if p not in added]
        if lost:
            for point, other in (await owners(session, lost)).items():
                if other.id != lead.id:
                    conflicts.append(_belongs(point, other.id))
        for point in resolution.add:
            if point in added:
                _fill_primary(lead, point)
        events = [
            _event(lead.id, ADDED, p, actor=actor, reason=reason, now=now)
            for p in resolution.add
            if p in added
        ]
        if events and audit:
            await point_store.record_events(session, events)
    await record_conflicts(session, lead.id, conflicts, actor=actor, now=now)
    return Attached([p for p in resolution.add if p in added], conflicts)


def _fill_primary(lead: Lead, point: Point) -> None:
    # The point is the lead's now, so no other lead has it as its primary column either.
    if point.kind is Kind.EMAIL and lead.email is None:
        lead.email = point.value
    elif point.kind is Kind.PHONE and lead.phone is None:
        lead.phone = point.value


async def record_conflicts(
    session: Session,
    lead_id: int,
    conflicts: Iterable[Conflict],
    *,
    actor: str,
    now: datetime,
) -> None:
    """Store each conflict for a human, with an audit event on ``lead_id``."""
    rows = [
        {
            "lead_id": lead_id,
            "other_lead_id": c.other_lead_id,
            "kind": c.point.kind.value,
            "value": c.point.value,
            "reason": c.reason[:2000],
            "actor": actor[:100],
            "status": "open",
            "created_at": now,
        }
        for c in conflicts
    ]
    if not rows:
        return
    new = await point_store.add_conflicts(session, rows)
    events = [
        _event(lead_id, CONFLICT, c.point, actor=actor, reason=c.reason, now=now)
        for c in conflicts
        if (c.other_lead_id, c.point.kind.value, c.point.value) in new
    ]
    if events:  # only conflicts not recorded before
        await point_store.record_events(session, events)


def _event(
    lead_id: int, action: str, point: Point, *, actor: str, reason: str, now: datetime
) -> dict[str, object]:
    return {
        "lead_id": lead_id,
        "action": action,
        "kind": point.kind.value,
        "value": point.value,
        "actor": actor[:100],
        "reason": reason[:2000],
        "at": now,
    }


async def points_for_lead(session: Session, lead_id: int) -> list[Point]:
    """The lead's contact points, oldest first."""
    return [Point(Kind(k), v) for k, v in await point_store.points_of_lead(session, lead_id)]


async def whatsapp_addresses(session: Session, lead_ids: set[int]) -> list[tuple[int, str]]:
    """``(lead id, address)`` of the leads that wrote on WhatsApp: their latest WhatsApp id
    (``+<wa_id>`` as Meta sent it), else their BSUID. Messages to them go there, so a
    Mexican ``521…`` or a username-only user is reached like a reply would be."""
    if not lead_ids:
        return []
    rows = await point_store.points_of_leads(
        session, lead_ids, (Kind.WHATSAPP.value, Kind.BSUID.value)
    )
    best: dict[int, tuple[bool, str]] = {}
    for lead_id, kind, value in rows:
        is_wa_id = kind == Kind.WHATSAPP.value
        if is_wa_id or not best.get(lead_id, (False, ""))[0]:
            best[lead_id] = (is_wa_id, value)
    return [(lead_id, value) for lead_id, (_, value) in best.items()]
