"""Sandbox prospects live apart from real leads.

The WhatsApp sandbox (embedded mode: play a prospect without Meta) makes leads of its own,
marked with the source :data:`SANDBOX_SOURCE`. A real contact point never lands on one:
when a real lead arrives with a phone number a sandbox lead holds, :func:`release_phone`
takes the number off the sandbox lead first (kept in its attribution as
``sandbox_phone``), so intake creates the real lead afresh instead of inheriting a
sandbox conversation's opt-out, stage or history. (The other way round, the sandbox
refuses a number a real lead has: ``bot.whatsapp.sandbox``.)
"""

from __future__ import annotations

from scheduler.errors import StoreError
from scheduler.pipeline.contacts import normalize_phone
from scheduler.pipeline.identity import Kind
from scheduler.store import Session
from scheduler.store.contact_points import remove_points
from scheduler.store.leads import lock_sandbox_lead

SANDBOX_SOURCE = "sandbox"


async def release_phone(session: Session, phone: str | None, *, default_region: str) -> int | None:
    """In the caller's transaction, before a real intake with ``phone``: if a sandbox lead
    holds that number, take it off that lead. Returns the sandbox lead's id, or None (no
    phone, an unusable one — intake reports it — or no sandbox lead holds it)."""
    if not phone:
        return None
    try:
        number = normalize_phone(phone, default_region)
    except StoreError:
        return None
    # The first row this transaction locks (lead rows first).
    lead = await lock_sandbox_lead(session, number, SANDBOX_SOURCE)
    if lead is None:
        return None
    lead.attribution = {**lead.attribution, "sandbox_phone": number}
    lead.phone = None
    await session.flush()
    # Its number as a contact point too (the phone, and the WhatsApp id it wrote from), so
    # intake matching on any contact point does not find the sandbox lead either.
    await remove_points(session, lead.id, [Kind.PHONE, Kind.WHATSAPP])  # before intake looks
    return lead.id
