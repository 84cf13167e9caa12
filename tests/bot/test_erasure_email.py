"""An erased person who unsubscribed stays unsubscribed: the email channel refuses their
address, known again only as a keyed hash."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scheduler.store.erasure import erase_lead
from scheduler.store.models import Suppression
from scheduler.store.suppressions import SuppressionReason, suppress, use_hash_key
from tests.bot.email_support import NOW, make_channel, make_lead, send_via_outbox
from tests.support.fakes.smtp import FakeSmtp

Sessions = async_sessionmaker[AsyncSession]
KEY = b"k" * 32


async def test_an_erased_unsubscribed_address_is_still_refused(sessions: Sessions) -> None:
    use_hash_key(sessions, KEY)  # as the app does with LEADBOT_SECRET_KEY
    lead = await make_lead(sessions, "jane@acme.com")
    async with sessions.begin() as session:
        await suppress(
            session, "jane@acme.com", reason=SuppressionReason.UNSUBSCRIBE, detail=None, now=NOW
        )
        await erase_lead(session, lead.id, actor="test", hash_key=KEY, now=NOW)
    async with sessions() as session:
        assert list(await session.scalars(select(Suppression.address))) != ["jane@acme.com"]
    await make_lead(sessions, "Jane@Acme.com")  # she comes back through a form

    async with FakeSmtp() as smtp:
        state, row = await send_via_outbox(
            sessions, make_channel(sessions, smtp.url), "jane@acme.com", {"text": "hi"}, key="b"
        )

    assert state == "failed" and "suppressed (unsubscribe)" in (row.error or "")
    assert smtp.received == []
