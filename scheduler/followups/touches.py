"""Touches are rows: start a sequence, cancel what is pending, claim what is due.

The API other components call:

- :func:`start_sequence` inserts one row per step (idempotent: UNIQUE (lead, sequence, step,
  cycle)), with ``due_at`` already moved out of quiet hours and onto business days in the
  lead's time zone;
- :func:`cancel_pending` cancels every open touch of a lead in one statement (call it on
  any inbound reply, a booking, an opt-out, a move to won/lost). It locks the lead row
  before the touches (the one lock order of :mod:`scheduler.store`), in the same statement.

The sweeper (:mod:`scheduler.followups.sweeper`) claims, renews and reaps with
:mod:`scheduler.store.touches`, whose docstring gives the status flow (:class:`TouchStatus`).
"""

from __future__ import annotations

from datetime import datetime

from scheduler.errors import NotFoundError, StoreError
from scheduler.followups.cadence import Cadence, Step
from scheduler.followups.timing import next_allowed, zone_for
from scheduler.store import Session
from scheduler.store.touches import OPEN, TouchStatus, cancel_open, insert_touches, lead_to_start

__all__ = [
    "OPEN",
    "TouchStateError",
    "TouchStatus",
    "cancel_pending",
    "due_at",
    "outbox_key",
    "start_sequence",
]


class TouchStateError(StoreError):
    """The touch is not in a state that allows the operation (e.g. approving a sent one)."""

    code = "touch_state"
    status = 409


def outbox_key(lead_id: int, sequence: str, step: str, cycle: int) -> str:
    """The outbox key of a touch: one intent per (lead, sequence, step, cycle), ever."""
    return f"lead:{lead_id}:touch:{sequence}:{step}:{cycle}"


def due_at(
    step: Step, start: datetime, cadence: Cadence, zone_name: str | None, phone: str | None
) -> datetime:
    """When ``step`` of a sequence started at ``start`` is due, after quiet hours (unless
    they would push it past the step's ``deadline``: then at its plain offset)."""
    due = start + step.offset
    if not step.respect_quiet_hours:
        return due
    zone = zone_for(zone_name, phone, cadence.default_timezone)
    allowed = next_allowed(due, zone, cadence.quiet_hours, cadence.business_days)
    if step.deadline is not None and allowed > start + step.deadline:
        return due
    return allowed


async def start_sequence(
    session: Session,
    lead_id: int,
    sequence: str,
    *,
    cadence: Cadence,
    now: datetime,
    cycle: int | None = None,
) -> int:
    """Schedule every step of ``sequence`` for the lead, in the caller's transaction.

    Returns how many rows were inserted: 0 when this (sequence, cycle) was already started
    (calling twice is harmless). Start a sequence again with a new ``cycle``; without one,
    a ``repeat`` sequence gets the lead's next cycle of it, any other cycle 0.
    Raises :class:`~scheduler.followups.cadence.UnknownSequenceError` and
    :class:`~scheduler.errors.NotFoundError`.
    """
    definition = cadence.sequence(sequence)
    steps = definition.steps
    # The lead is locked here (the lead before its touches: the one lock order), and a
    # ``repeat`` sequence's last cycle read with it: one round trip for both.
    lead = await lead_to_start(session, lead_id, sequence)
    if lead is None:
        raise NotFoundError(f"lead {lead_id} does not exist")
    if cycle is None:
        last = lead.last_cycle if definition.repeat else None
        cycle = 0 if last is None else last + 1
    rows: list[dict[str, object]] = [
        {
            "lead_id": lead_id,
            "sequence": sequence,
            "step": step.id,
            "cycle": cycle,
            "channel": step.channel,
            "due_at": due_at(step, now, cadence, lead.timezone, lead.phone),
            "status": TouchStatus.PENDING.value,
            "needs_approval": step.approval is True,
            "attempts": 0,
            "meta": {},
            "created_at": now,
        }
        for step in steps
    ]
    return await insert_touches(session, rows)


async def cancel_pending(session: Session, lead_id: int, *, reason: str, now: datetime) -> int:
    """Cancel every open touch of the lead (pending, being drafted, awaiting approval) in
    one statement, in the caller's transaction. Returns how many were cancelled.

    A touch being drafted right now loses its claim: the sweeper's fenced update then finds
    it cancelled and sends nothing.
    """
    # The lead row is locked first, inside the statement (the one lock order).
    return await cancel_open(session, lead_id, reason=reason)
