"""What a received email does, in one transaction with its dedup record.

1. Seen before (same Message-ID, ``ProcessedEvent`` source ``email``)? Nothing more.
2. A bounce: a permanent failure suppresses the failed address(es); a delay is ignored.
3. An auto-reply: ignored (the lead did not answer; the cadence goes on).
4. Matched to a lead — by the ``reply+<token>`` recipient, then our Message-IDs in
   ``In-Reply-To``/``References``, then the sender address — or ignored as unmatched.
5. A real reply: stored as an inbound message (quotes stripped), ``last_inbound_at`` set,
   pending touches cancelled, New/Dormant → Contacted, the owner rep notified. A reply
   that only says "unsubscribe"/"stop" is an opt-out instead. After the commit the
   webhook hands a reply's message id to :mod:`bot.email.notes_service`, which reads it
   into a structured note on the lead (outside this transaction: a model may be slow).

The caller commits; if anything raises, nothing is recorded and the provider's retry
(Mailgun retries non-2xx for hours) gets a clean second chance.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.email.actions import cancel_touches, hard_bounce, opt_out
from bot.email.classify import bounce_of, is_auto_reply
from bot.email.inbound_message import InboundEmail
from bot.email.quotes import strip_quotes
from bot.notify import notify_reps
from scheduler.pipeline.stages import transition
from scheduler.store import Session, conversations, events
from scheduler.store import leads as lead_store
from scheduler.store import outbox as outbox_store
from scheduler.store.models import Lead, Message, Stage
from scheduler.store.suppressions import SuppressionReason

log = logging.getLogger("leadbot.email_in")

ACTOR = "email"
_PLUS = re.compile(r"^reply\+([A-Za-z0-9_-]{4,64})@", re.IGNORECASE)
_OPT_OUT = re.compile(
    r"^\s*(please\s+)?(unsubscribe( me)?|stop|remove me( from (your|this|the) (list|emails?))?"
    r"|opt[ -]?out|take me off (your|this|the) list|no more emails?)\s*[.!]*\s*$",
    re.IGNORECASE,
)

Notify = Callable[[Session, Lead, InboundEmail, str, datetime], Awaitable[None]]
"""``notify(session, lead, email, reply_text, now)``: tell the lead's rep about a reply."""


class InboundEmailOutcome(StrEnum):
    """What the email turned out to be."""

    REPLY = "reply"
    OPT_OUT = "opt_out"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    UNMATCHED = "unmatched"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome, and the lead it concerned when there was one."""

    outcome: InboundEmailOutcome
    lead_id: int | None = None
    # The stored reply (a reply or an opt-out): its id is set once the transaction flushed.
    message: Message | None = None

    @property
    def message_id(self) -> int | None:
        """The stored reply's id (read after the commit), or None."""
        return self.message.id if self.message is not None else None


async def first_time(session: Session, source: str, key: str, now: datetime) -> bool:
    """Record ``(source, key)`` as processed; False when it already was."""
    return await events.first_time(session, source, key, now)


async def match_lead(session: Session, email: InboundEmail) -> Lead | None:
    """The lead an email answers: plus token, then our Message-IDs, then the sender."""
    for recipient in email.recipients:
        found = _PLUS.match(recipient)
        if found:
            token = found.group(1)
            lead = await lead_store.lead_by_token(session, token)
            if lead is None:  # some relays lower-case the local part
                leads = await lead_store.leads_by_token_ignoring_case(session, token, limit=2)
                lead = leads[0] if len(leads) == 1 else None
            if lead is not None:
                return lead
    ids = list(dict.fromkeys([*email.in_reply_to, *reversed(email.references)]))
    if ids:
        lead_id = await conversations.lead_of_messages(
            session, ids
        ) or await outbox_store.lead_of_sent(session, ids)
        if lead_id is not None:
            return await lead_store.find_lead(session, lead_id)
    by_sender = await lead_store.leads_by_email_ignoring_case(session, email.sender)
    return by_sender[0] if by_sender else None


async def notify_owner(
    session: Session, lead: Lead, email: InboundEmail, text: str, now: datetime
) -> None:
    """Default notifier: the lead's owner rep (assigned now if none) hears of the reply."""
    await notify_reps(
        session,
        lead=lead,
        kind="replied",
        summary=f"by email: {email.subject or '(no subject)'}"[:200],
        details={"message_id": email.dedup_key, "from": email.sender, "text": text[:2000]},
        now=now,
    )


def is_opt_out(text: str, subject: str) -> bool:
    """A reply that only asks to stop (the mailto unsubscribe sends subject "unsubscribe")."""
    return bool(_OPT_OUT.match(text)) if text.strip() else bool(_OPT_OUT.match(subject))


async def _bounce_candidates(session: Session, email: InboundEmail) -> frozenset[str]:
    """Addresses in the text that we have emailed (for reports without DSN fields)."""
    mentioned = {m.lower() for m in re.findall(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+", email.text)}
    if not mentioned:
        return frozenset()
    return await outbox_store.recipients_among(session, "email", mentioned)


async def handle_email(
    session: Session,
    email: InboundEmail,
    *,
    now: datetime,
    notify: Notify | None = notify_owner,
) -> Result:
    """Apply ``email`` (see the module docstring) in the caller's transaction."""
    if not await first_time(session, "email", email.dedup_key, now):
        return Result(InboundEmailOutcome.DUPLICATE)
    bounce = bounce_of(email)
    if bounce is not None and bounce.permanent and not bounce.addresses:
        bounce = bounce_of(email, await _bounce_candidates(session, email))
    if bounce is not None:
        if bounce.permanent:
            for address in bounce.addresses:
                await hard_bounce(session, address, detail=f"bounce {bounce.status}", now=now)
        log.info("bounce %s for %s", bounce.status, ", ".join(bounce.addresses) or "?")
        return Result(InboundEmailOutcome.BOUNCE)
    if is_auto_reply(email):
        return Result(InboundEmailOutcome.AUTO_REPLY)
    lead = await match_lead(session, email)
    if lead is not None:
        # Decide on the lead as it is now, locked (the first row this transaction locks):
        # a rep's "lost" committed meanwhile is seen, and no move can slip in after.
        lead = await lead_store.lock_lead(session, lead.id)
    if lead is None:
        log.info("email from %s matches no lead; ignored", email.sender)
        return Result(InboundEmailOutcome.UNMATCHED)

    text = email.stripped_text.strip() if email.stripped_text else strip_quotes(email.text)
    opting_out = is_opt_out(text, email.subject)
    message = conversations.add_message(
        session,
        lead_id=lead.id,
        channel="email",
        direction="in",
        external_id=email.message_id,
        body=text,
        payload={
            "from": email.sender,
            "subject": email.subject,
            "in_reply_to": list(email.in_reply_to),
            "references": list(email.references),
            # An opt-out gets no note (scheduler.intake.email_notes reads this).
            **({"opt_out": True} if opting_out else {}),
        },
        created_at=now,
    )
    await lead_store.note_inbound(session, lead.id, now)
    await cancel_touches(session, lead.id, reason="replied by email", now=now)
    if opting_out:
        await opt_out(
            session,
            email.sender,
            lead_id=lead.id,
            reason=SuppressionReason.REPLY_OPTOUT,
            detail=f"replied: {text or email.subject}"[:200],
            now=now,
        )
        return Result(InboundEmailOutcome.OPT_OUT, lead.id, message)
    if Stage(lead.stage) in (Stage.NEW, Stage.DORMANT):
        # Fenced on the stage read above: a reply never reopens a lead moved since.
        await transition(
            session,
            lead.id,
            Stage.CONTACTED,
            reason="replied by email",
            actor=ACTOR,
            now=now,
            expected_from=lead.stage,
        )
    if notify is not None:
        await notify(session, lead, email, text, now)
    return Result(InboundEmailOutcome.REPLY, lead.id, message)
