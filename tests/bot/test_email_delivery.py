"""Email through the outbox under a hanging SMTP server (issue 12, items 26 and 27): each
email is recorded as its own submission ends, and after a crash only the email whose DATA
was under way is uncertain; the ones never attempted are sent later."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scheduler.delivery.outbox import Dispatcher, enqueue
from scheduler.store.models import OutboxItem
from tests.bot.email_support import NOW, Clock, make_channel, make_lead
from tests.support.fakes.smtp import FakeSmtp

Sessions = async_sessionmaker[AsyncSession]
PAYLOAD = {"subject": "Quick question", "text": "Hi,\nshall we talk?"}
REFUSED, HANGS, NEVER = "gone@acme.com", "slow@acme.com", "later@acme.com"


async def states(sessions: Sessions) -> dict[str, OutboxItem]:
    async with sessions() as session:
        return {r.recipient: r for r in await session.scalars(select(OutboxItem))}


async def test_a_hanging_submission_strands_no_other_email(sessions: Sessions) -> None:
    async with sessions.begin() as session:
        ids = [
            await enqueue(
                session, key=f"k:{to}", channel="email", recipient=to, payload=PAYLOAD, now=NOW
            )
            for to in (REFUSED, HANGS, NEVER)
        ]
    for address in (REFUSED, HANGS, NEVER):
        await make_lead(sessions, address)
    async with FakeSmtp() as smtp:
        smtp.rcpt_replies[REFUSED] = "550 5.1.1 no such user"
        smtp.hang_data = True
        channel = make_channel(sessions, smtp.url, clock=Clock(NOW), timeout=60)
        dispatcher = Dispatcher(sessions, {"email": channel})
        # One at a time: the third email waits behind the second, whose DATA hangs.
        task = asyncio.create_task(
            dispatcher.deliver_many([i for i in ids if i is not None], NOW, concurrency=1)
        )
        await asyncio.wait_for(smtp.data_started.wait(), 10)
        rows = await states(sessions)
        assert rows[REFUSED].state == "failed"  # recorded when refused, not after the batch
        assert rows[HANGS].state == rows[NEVER].state == "sending"
        task.cancel()  # the worker dies mid-batch
        await asyncio.gather(task, return_exceptions=True)
        await channel.aclose()

    reaper = Dispatcher(sessions, {})
    assert await reaper.reap(NOW + timedelta(minutes=6)) == 2
    rows = await states(sessions)
    assert rows[HANGS].state == "uncertain"
    assert (rows[NEVER].state, rows[NEVER].attempts) == ("pending", 0)
    async with FakeSmtp() as smtp:
        channel = make_channel(sessions, smtp.url, clock=Clock(NOW + timedelta(minutes=7)))
        later = Dispatcher(sessions, {"email": channel})
        assert await later.deliver_due(NOW + timedelta(minutes=7)) == 1
        await channel.aclose()
        assert [m.rcpt_tos for m in smtp.received] == [[NEVER]]
    assert (await states(sessions))[NEVER].state == "sent"
