"""A console user's reply in a conversation they took: which message goes out, on which
channel, and storing it as an outbox intent (issue 14, item 4).

The reply goes out on the conversation's own channel (the one the prospect last wrote on):

- WhatsApp, inside the 24-hour customer-service window (their last message is less than
  a day old and Meta has not reported the window closed since): the text, as written;
- WhatsApp, outside it: only an approved template may go (the configured
  ``LEADBOT_WHATSAPP_TEMPLATE``), which invites them to write again; the text is kept with
  it for the record. With no template configured the reply is refused here, rather than
  sent for Meta to reject;
- email: threaded on the conversation's last email (``In-Reply-To`` its Message-ID,
  ``References`` its references and it, ``Re:`` its subject).

The intent is keyed by the client's idempotency key (``console:<lead>:<key>``), so a form
sent twice stores one row and sends once. The outbox records the message in the lead's
conversation when it is sent, as it does the bot's own replies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from dialogs.errors import InputError
from scheduler.errors import NotFoundError, StoreError
from scheduler.pipeline.identity import whatsapp_addresses
from scheduler.pipeline.takeover import NotYourConversationError
from scheduler.store import Session, conversation_feed, outbox
from scheduler.store.conversation_feed import LastEmail
from scheduler.store.leads import lock_lead
from scheduler.store.models import Lead

SERVICE_WINDOW = timedelta(hours=24)  # WhatsApp's customer-service window
WHATSAPP_TEXT_MAX = 4096  # the Cloud API's limit on a text body
EMAIL_TEXT_MAX = 50_000
REFERENCES_KEPT = 20  # the References header keeps the thread's last ids
DEFAULT_SUBJECT = "Following up on our conversation"
_KEY = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


class ReplyKind(StrEnum):
    """What a console reply becomes."""

    WHATSAPP_TEXT = "whatsapp_text"
    WHATSAPP_TEMPLATE = "whatsapp_template"
    EMAIL = "email"


class ReplyRefusedError(StoreError):
    """The reply cannot go out on the conversation's channel now (the message says why)."""

    code = "reply_refused"
    status = 409


class InvalidReplyError(StoreError, InputError, ValueError):
    """The reply itself is unusable (empty, too long, no idempotency key)."""

    code = "invalid_reply"
    status = 422


@dataclass(frozen=True, slots=True)
class TemplateConfig:
    """The approved WhatsApp template sent outside the 24-hour window ("" = none)."""

    name: str
    language: str = "en_US"


@dataclass(frozen=True, slots=True)
class ReplyFacts:
    """What the policy decides on: the lead, where WhatsApp reaches them, the channel the
    conversation is on, and its last email."""

    lead: Lead
    whatsapp_address: str | None
    channel: str | None
    last_email: LastEmail | None


@dataclass(frozen=True, slots=True)
class ReplyRoute:
    """Where a reply goes and as what; ``refusal`` says why it cannot go (then ``kind`` is
    None)."""

    channel: str
    kind: ReplyKind | None
    recipient: str | None
    refusal: str | None = None
    window_until: datetime | None = None
    template: TemplateConfig | None = None
    subject: str = ""


async def reply_facts(session: Session, lead: Lead) -> ReplyFacts:
    """The facts :func:`route_reply` needs about ``lead`` (loaded in ``session``)."""
    addresses = dict(await whatsapp_addresses(session, {lead.id}))
    return ReplyFacts(
        lead=lead,
        whatsapp_address=addresses.get(lead.id),
        channel=await conversation_feed.conversation_channel(session, lead.id),
        last_email=await conversation_feed.last_email(session, lead.id),
    )


def window_until(lead: Lead) -> datetime | None:
    """When the lead's 24-hour WhatsApp window closes; None when it is closed (they never
    wrote, or Meta reported it closed after their last message)."""
    last, closed = lead.last_inbound_at, lead.whatsapp_window_closed_at
    if last is None or (closed is not None and closed >= last):
        return None
    return last + SERVICE_WINDOW


def route_reply(facts: ReplyFacts, template: TemplateConfig, now: datetime) -> ReplyRoute:
    """The policy: which message a reply in this conversation becomes, or why none can go."""
    lead = facts.lead
    whatsapp = facts.whatsapp_address or lead.phone
    channel = facts.channel
    if channel not in ("whatsapp", "email"):
        channel = "whatsapp" if whatsapp else "email"
    if channel == "email" and not lead.email and whatsapp:
        channel = "whatsapp"
    if lead.opted_out_at is not None:
        refusal = f"the lead opted out ({lead.opted_out_at:%Y-%m-%d %H:%M} UTC): nothing may go"
        return ReplyRoute(channel, None, None, refusal)
    if channel == "email":
        return _email_route(facts)
    if not whatsapp:
        return ReplyRoute(channel, None, None, "the lead has no WhatsApp number or email")
    until = window_until(lead)
    if until is not None and now < until:
        return ReplyRoute(channel, ReplyKind.WHATSAPP_TEXT, whatsapp, window_until=until)
    if not template.name:
        refusal = (
            "more than 24 hours have passed since their last WhatsApp message, so WhatsApp "
            "only delivers an approved template now, and none is configured "
            "(LEADBOT_WHATSAPP_TEMPLATE): nothing was sent"
        )
        return ReplyRoute(channel, None, whatsapp, refusal)
    return ReplyRoute(channel, ReplyKind.WHATSAPP_TEMPLATE, whatsapp, template=template)


def _email_route(facts: ReplyFacts) -> ReplyRoute:
    lead = facts.lead
    if not lead.email:
        return ReplyRoute("email", None, None, "the lead has no email address")
    if lead.email_status:
        return ReplyRoute("email", None, lead.email, f"the lead's email is {lead.email_status}")
    # One line: it becomes a header (a subject read from an email may carry line breaks).
    subject = " ".join(facts.last_email.subject.split()) if facts.last_email else ""
    if subject and not subject.lower().startswith("re:"):
        subject = f"Re: {subject}"
    return ReplyRoute("email", ReplyKind.EMAIL, lead.email, subject=subject or DEFAULT_SUBJECT)


def reply_payload(route: ReplyRoute, facts: ReplyFacts, text: str, author: str) -> dict[str, Any]:
    """The outbox payload of ``text`` sent along ``route`` (the channels' own schemas:
    ``bot/whatsapp/payloads.py``, ``bot/channels/email_message.py``)."""
    text = text.strip()
    if route.kind is None:
        raise ReplyRefusedError(route.refusal or "this reply cannot go out")
    if route.kind is ReplyKind.WHATSAPP_TEMPLATE:
        assert route.template is not None
        _check_length(text, WHATSAPP_TEXT_MAX, required=False)
        return {
            "kind": "template",
            "template": route.template.name,
            "language": route.template.language,
            "text": f"[template {route.template.name}]",
            "note": text,
            "sent_by": author,
        }
    if route.kind is ReplyKind.WHATSAPP_TEXT:
        _check_length(text, WHATSAPP_TEXT_MAX, required=True)
        assert route.window_until is not None
        # The channel sends free-form only while the window carried here is open; a retry
        # after it closed goes out as the configured template instead.
        return {
            "kind": "text",
            "text": text,
            "window_until": route.window_until.isoformat(),
            "sent_by": author,
        }
    _check_length(text, EMAIL_TEXT_MAX, required=True)
    lead = facts.lead
    payload: dict[str, Any] = {
        "subject": route.subject,
        "text": text,
        "lead_token": lead.token,
        "sent_by": author,
    }
    if lead.name:
        payload["to_name"] = " ".join(lead.name.split())  # one line: it becomes a header
    thread = facts.last_email
    if thread is not None:
        references = [*thread.references, thread.message_id][-REFERENCES_KEPT:]
        payload["thread"] = {
            "in_reply_to": thread.message_id,
            "references": " ".join(dict.fromkeys(references)),
        }
    return payload


def _check_length(text: str, most: int, *, required: bool) -> None:
    if required and not text:
        raise InvalidReplyError("write a reply first")
    if len(text) > most:
        raise InvalidReplyError(f"the reply is {len(text)} characters; at most {most} can go")


def outbox_key(lead_id: int, idempotency_key: str) -> str:
    """The outbox key of a console reply: one intent per form submission, however often
    it is sent."""
    if not _KEY.match(idempotency_key):
        raise InvalidReplyError("the form has no valid idempotency key: reload the page")
    return f"console:{lead_id}:{idempotency_key}"


async def enqueue_reply(
    session: Session,
    lead_id: int,
    *,
    user_id: int,
    author: str,
    text: str,
    idempotency_key: str,
    template: TemplateConfig,
    now: datetime,
) -> int | None:
    """Store the reply of ``user_id`` (who must have the conversation) as an outbox
    intent, in the caller's transaction; the new row's id, or None when this submission
    was stored before (it is never stored twice)."""
    key = outbox_key(lead_id, idempotency_key)
    lead = await lock_lead(session, lead_id)  # the first row locked: the lead
    if lead is None or lead.erased_at is not None:
        raise NotFoundError(f"lead {lead_id} does not exist")
    if lead.taken_by_user_id != user_id:
        raise NotYourConversationError(
            "take the conversation first: only the person who has it can reply"
        )
    facts = await reply_facts(session, lead)
    route = route_reply(facts, template, now)
    payload = reply_payload(route, facts, text, author)
    assert route.recipient is not None
    return await outbox.enqueue(
        session,
        key=key,
        channel=route.channel,
        recipient=route.recipient,
        payload=payload,
        now=now,
        lead_id=lead_id,
    )
