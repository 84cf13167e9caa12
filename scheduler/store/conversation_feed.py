"""One lead's conversation as the console's take-over shows it live: its messages in id
order with the delivery status of the outbox row that sent each outbound one, the outbox
rows whose status changed since a moment, and what a reply needs to know (the channel the
conversation is on, the email to thread on).

Reading "after a message id" misses nothing: every writer of a lead's messages (a turn of
the inbox processor, an email reply, the outbox recording a send) locks the lead row
before it inserts them (THE ONE LOCK ORDER in :mod:`scheduler.store`), so one lead's
message ids commit in ascending order. Outbox rows carry no such order; their changes are
read by ``updated_at`` (every state and delivery-status write sets it), and the caller
reads back a little further than it has seen and drops what it already has.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.store.models import Message, OutboxItem, OutboxState

UNSENT_STATES = (
    OutboxState.PENDING.value,
    OutboxState.SENDING.value,
    OutboxState.FAILED.value,
    OutboxState.UNCERTAIN.value,
)


@dataclass(frozen=True, slots=True)
class FeedDelivery:
    """The outbox row of an outbound message: its state, the provider's delivery status
    (WhatsApp: sent, delivered, read, failed), the error if any, and when it last changed."""

    outbox_id: int
    channel: str
    state: str
    delivery_status: str | None
    error: str | None
    changed_at: datetime
    created_at: datetime
    text: str
    message_id: int | None  # the message row recording the send, once sent


@dataclass(frozen=True, slots=True)
class FeedMessage:
    """One message of the conversation; ``delivery`` for an outbound one we sent."""

    id: int
    channel: str
    direction: str
    body: str
    created_at: datetime
    payload: dict[str, Any]
    delivery: FeedDelivery | None


def _message_query(lead_id: int) -> Any:
    # Outbound messages are recorded with the provider's id of the outbox row that sent
    # them (unique per message; the outbox column is indexed).
    joined = and_(
        Message.direction == "out",
        OutboxItem.external_id == Message.external_id,
        OutboxItem.channel == Message.channel,
    )
    return (
        select(Message, *_delivery_columns())
        .outerjoin(OutboxItem, joined)
        .where(Message.lead_id == lead_id)
    )


def _delivery_columns() -> tuple[Any, ...]:
    return (
        OutboxItem.id.label("outbox_id"),
        OutboxItem.state,
        OutboxItem.delivery_status,
        OutboxItem.error,
        OutboxItem.updated_at,
        OutboxItem.created_at.label("outbox_created_at"),
        OutboxItem.payload.label("outbox_payload"),
    )


def _feed_message(row: Any) -> FeedMessage:
    message: Message = row.Message
    delivery = None
    if row.outbox_id is not None:
        delivery = _delivery(row, message.channel, message.id)
    return FeedMessage(
        id=message.id,
        channel=message.channel,
        direction=message.direction,
        body=message.body,
        created_at=message.created_at,
        payload=dict(message.payload or {}),
        delivery=delivery,
    )


def _delivery(row: Any, channel: str, message_id: int | None) -> FeedDelivery:
    payload = row.outbox_payload if isinstance(row.outbox_payload, dict) else {}
    return FeedDelivery(
        outbox_id=row.outbox_id,
        channel=channel,
        state=row.state,
        delivery_status=row.delivery_status,
        error=row.error,
        changed_at=row.updated_at,
        created_at=row.outbox_created_at,
        text=str(payload.get("text", "")),
        message_id=message_id,
    )


async def recent_messages(session: AsyncSession, lead_id: int, limit: int) -> list[FeedMessage]:
    """The lead's last ``limit`` messages, oldest first."""
    rows = await session.execute(_message_query(lead_id).order_by(Message.id.desc()).limit(limit))
    return [_feed_message(r) for r in reversed(rows.all())]


async def messages_after(
    session: AsyncSession, lead_id: int, after_id: int, limit: int
) -> list[FeedMessage]:
    """The lead's messages with an id above ``after_id``, oldest first (at most ``limit``)."""
    rows = await session.execute(
        _message_query(lead_id).where(Message.id > after_id).order_by(Message.id).limit(limit)
    )
    return [_feed_message(r) for r in rows]


def _delivery_query(lead_id: int) -> Any:
    recorded = and_(
        Message.external_id == OutboxItem.external_id,
        Message.channel == OutboxItem.channel,
        Message.lead_id == lead_id,
    )
    return (
        select(OutboxItem.channel, Message.id.label("message_id"), *_delivery_columns())
        .outerjoin(Message, recorded)
        .where(OutboxItem.lead_id == lead_id)
    )


def _deliveries(rows: Any) -> list[FeedDelivery]:
    return [_delivery(r, r.channel, r.message_id) for r in rows]


async def unsent(session: AsyncSession, lead_id: int, limit: int) -> list[FeedDelivery]:
    """The lead's outbox rows not (or not surely) sent: waiting, being sent, failed or
    uncertain, oldest first (the last ``limit``)."""
    rows = await session.execute(
        _delivery_query(lead_id)
        .where(OutboxItem.state.in_(UNSENT_STATES))
        .order_by(OutboxItem.id.desc())
        .limit(limit)
    )
    return list(reversed(_deliveries(rows)))


async def deliveries_changed(
    session: AsyncSession, lead_id: int, since: datetime, limit: int
) -> list[FeedDelivery]:
    """The lead's outbox rows changed after ``since``, in the order they changed."""
    rows = await session.execute(
        _delivery_query(lead_id)
        .where(OutboxItem.updated_at > since)
        .order_by(OutboxItem.updated_at, OutboxItem.id)
        .limit(limit)
    )
    return _deliveries(rows)


async def last_delivery_change(session: AsyncSession, lead_id: int) -> datetime | None:
    """When an outbox row of the lead last changed (None: it has none)."""
    at: datetime | None = await session.scalar(
        select(func.max(OutboxItem.updated_at)).where(OutboxItem.lead_id == lead_id)
    )
    return at


# -- what a reply needs --------------------------------------------------------------------


async def conversation_channel(session: AsyncSession, lead_id: int) -> str | None:
    """The channel the lead last wrote on (else the one we last wrote on); None when the
    conversation has no message yet."""
    inbound_first = case((Message.direction == "in", 0), else_=1)
    channel: str | None = await session.scalar(
        select(Message.channel)
        .where(Message.lead_id == lead_id)
        .order_by(inbound_first, Message.id.desc())
        .limit(1)
    )
    return channel


@dataclass(frozen=True, slots=True)
class LastEmail:
    """The last email of a conversation, which a reply answers: its ``Message-ID``, the
    ``References`` it carried, and its subject."""

    message_id: str
    references: tuple[str, ...]
    subject: str


async def last_email(session: AsyncSession, lead_id: int) -> LastEmail | None:
    """The lead's last email with a real ``Message-ID`` (either direction), or None."""
    message = await session.scalar(
        select(Message)
        .where(
            Message.lead_id == lead_id,
            Message.channel == "email",
            Message.external_id.like("<%"),
        )
        .order_by(Message.id.desc())
        .limit(1)
    )
    if message is None or message.external_id is None:
        return None
    payload = message.payload or {}
    references = payload.get("references")
    if references is None and isinstance(payload.get("thread"), dict):
        references = payload["thread"].get("references")
    if isinstance(references, str):
        references = references.split()
    found = tuple(r for r in references or () if isinstance(r, str) and r)
    subject = payload.get("subject")
    return LastEmail(message.external_id, found, subject if isinstance(subject, str) else "")
