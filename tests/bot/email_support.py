"""Shared helpers of the email tests: leads, the channel on a fake SMTP server, the clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.email import EmailChannel
from bot.channels.email_message import EmailSender
from bot.channels.smtp import SmtpConfig
from bot.http.signing import Signer
from scheduler.delivery.outbox import Dispatcher, enqueue
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.store.models import Lead, Message, OutboxItem, Touch

SECRET = "s" * 32
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
PUBLIC_URL = "https://bot.example.com"
FAR = datetime(2100, 1, 1, tzinfo=UTC)


class Clock:
    """A settable clock for the channel."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def make_lead(
    sessions: async_sessionmaker[AsyncSession], email: str = "jane@acme.com", **fields: Any
) -> Lead:
    """A lead created through intake (the real path), then with ``fields`` set."""
    async with sessions.begin() as session:
        result = await intake(
            session, LeadIn(email=email, name="Jane Doe"), default_region="US", now=NOW
        )
        lead = result.lead
        for name, value in fields.items():
            setattr(lead, name, value)
    return lead


def make_channel(
    sessions: async_sessionmaker[AsyncSession],
    smtp_url: str,
    *,
    clock: Clock | None = None,
    daily_cap: int = 100,
    domain_per_minute: int = 10,
    public_url: str = PUBLIC_URL,
    timeout: float = 5.0,
) -> EmailChannel:
    """The email channel against ``smtp_url``, as the app would build it."""
    return EmailChannel(
        SmtpConfig.from_url(smtp_url, timeout=timeout),
        sessions,
        sender=EmailSender.parse("Acme Sales <sales@bot.example.com>"),
        signer=Signer(SECRET),
        public_url=public_url,
        daily_cap=daily_cap,
        domain_per_minute=domain_per_minute,
        clock=clock or Clock(),
    )


async def send_via_outbox(
    sessions: async_sessionmaker[AsyncSession],
    channel: EmailChannel,
    recipient: str,
    payload: dict[str, Any],
    *,
    key: str,
    lead_id: int | None = None,
    now: datetime = NOW,
) -> tuple[str, OutboxItem]:
    """Enqueue and deliver one email through the real dispatcher; the state and the row."""
    async with sessions.begin() as session:
        item_id = await enqueue(
            session,
            key=key,
            channel="email",
            recipient=recipient,
            payload=payload,
            now=now,
            lead_id=lead_id,
        )
    assert item_id is not None
    state = await Dispatcher(sessions, {"email": channel}).deliver(item_id, now)
    async with sessions() as session:
        row = await session.get_one(OutboxItem, item_id)
    return state, row


async def messages_of(sessions: async_sessionmaker[AsyncSession], lead_id: int) -> list[Message]:
    """The lead's conversation, oldest first."""
    async with sessions() as session:
        rows = await session.scalars(
            select(Message).where(Message.lead_id == lead_id).order_by(Message.id)
        )
        return list(rows)


async def add_touch(sessions: async_sessionmaker[AsyncSession], lead_id: int, step: str) -> None:
    """A pending follow-up for the lead."""
    async with sessions.begin() as session:
        session.add(
            # Due far ahead, so that no sweeper running in the app picks it up mid-test.
            Touch(lead_id=lead_id, sequence="email", step=step, channel="email", due_at=FAR)
        )


async def touch_statuses(sessions: async_sessionmaker[AsyncSession], lead_id: int) -> list[str]:
    """The status of each of the lead's touches."""
    async with sessions() as session:
        rows = await session.scalars(select(Touch.status).where(Touch.lead_id == lead_id))
        return list(rows)


PAYLOAD_TEXT = {"subject": "Quick question", "text": "Hi Jane,\nshall we talk?"}
