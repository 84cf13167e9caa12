"""What happens to a lead when email tells us something: an opt-out, a hard bounce.

Shared by the unsubscribe page, the inbound-email handler and the email channel, so that
"unsubscribed" means the same thing wherever it was learnt: the address is suppressed, the
lead is flagged, and its pending follow-ups are cancelled — in the caller's transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime

from scheduler.followups.touches import cancel_pending
from scheduler.store import Session
from scheduler.store import leads as lead_store
from scheduler.store.models import Lead
from scheduler.store.suppressions import SuppressionReason, normalize_address, suppress

log = logging.getLogger("leadbot.email")


async def cancel_touches(session: Session, lead_id: int, *, reason: str, now: datetime) -> None:
    """Cancel the lead's pending follow-ups (replied, opted out, …)."""
    await cancel_pending(session, lead_id, reason=reason, now=now)


async def leads_with_address(session: Session, address: str) -> list[Lead]:
    """Leads whose email is ``address`` (0 or 1: emails are unique, compared lower-cased)."""
    key = normalize_address(address)
    return await lead_store.leads_by_email_ignoring_case(session, key)


async def opt_out(
    session: Session,
    address: str,
    *,
    lead_id: int | None,
    reason: SuppressionReason,
    detail: str | None,
    now: datetime,
) -> None:
    """Never email ``address`` again; flag its lead(s) opted out and cancel their touches.

    Idempotent: opting out twice changes nothing the second time (the first time is kept).
    """
    await suppress(session, address, reason=reason, detail=detail, now=now)
    lead_ids = {lead.id for lead in await leads_with_address(session, address)}
    if lead_id is not None:
        lead_ids.add(lead_id)
    for one in sorted(lead_ids):
        await lead_store.set_opted_out(session, one, reason.value, now)
        await cancel_touches(session, one, reason=f"opted out ({reason.value})", now=now)
    log.info("opted out %s (%s)", address, reason.value)


async def hard_bounce(session: Session, address: str, *, detail: str, now: datetime) -> None:
    """The address does not exist (or refuses us for good): suppress it and say so on the
    lead (``email_status``). Touches are left alone: they may go out on WhatsApp, and the
    email channel refuses every send to a suppressed address."""
    await suppress(session, address, reason=SuppressionReason.HARD_BOUNCE, detail=detail, now=now)
    for lead in await leads_with_address(session, address):
        await lead_store.set_email_status(session, lead.id, f"bounced: {detail}"[:200], now)
    log.warning("hard bounce %s: %s", address, detail)
