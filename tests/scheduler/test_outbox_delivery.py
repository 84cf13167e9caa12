"""The delivery path under faults (issue 12): send-time opt-out checks, outcomes recorded as
they come, a crash mid-batch, recording that survives a deadlock, touches that follow their
outbox row."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from scheduler.delivery.outbox import Dispatcher, NotSent, Receipt, enqueue
from scheduler.followups.lifecycle import mark_dormant
from scheduler.followups.touches import start_sequence
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.store.engine import is_postgres
from scheduler.store.models import Lead, Message, OutboxItem, Rep, Touch
from scheduler.store.suppressions import SuppressionReason, suppress
from tests.scheduler.cadence_support import RecordingChannel, compressed, make_lead, make_sweeper

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
S = timedelta(seconds=1)
Sessions = async_sessionmaker[AsyncSession]


class Gate:
    """A channel whose sends to some recipients hang until released; others return at once
    (or raise their scripted error). Records the order requests started in."""

    def __init__(
        self,
        name: str = "test",
        *,
        outcomes: Mapping[str, Exception] | None = None,
        hang: set[str] | None = None,
    ) -> None:
        self.name = name
        self.outcomes = dict(outcomes or {})
        self.hang = set(hang or ())
        self.started: list[str] = []
        self.release = asyncio.Event()
        self.hanging = asyncio.Event()

    async def send(self, recipient: str, payload: Mapping[str, Any]) -> Receipt:
        self.started.append(recipient)
        if recipient in self.hang:
            self.hanging.set()
            await self.release.wait()
        await asyncio.sleep(0)
        if recipient in self.outcomes:
            raise self.outcomes[recipient]
        return Receipt(external_id=f"ext-{recipient}")


async def make_rows(
    sessions: Sessions, count: int, *, channel: str = "test", email: bool = False
) -> list[tuple[int, int, str]]:
    """``count`` leads with one pending row each: (row id, lead id, recipient)."""
    made = []
    async with sessions.begin() as session:
        for n in range(count):
            data = LeadIn(email=f"p{n}@example.com") if email else LeadIn(phone=f"+1415555{n:04d}")
            lead = (await intake(session, data, default_region="US", now=NOW)).lead
            recipient = lead.email if email else lead.phone
            assert recipient is not None
            item_id = await enqueue(
                session,
                key=f"lead:{lead.id}:t",
                channel=channel,
                recipient=recipient,
                payload={"text": f"Hi {n}"},
                now=NOW,
                lead_id=lead.id,
            )
            assert item_id is not None
            made.append((item_id, lead.id, recipient))
    return made


async def rows(sessions: Sessions) -> dict[int, OutboxItem]:
    async with sessions() as session:
        return {r.id: r for r in await session.scalars(select(OutboxItem))}


async def until(condition: Any, timeout: float = 5.0) -> None:
    """Wait (bounded) for an async condition to hold: polling a state, not a race fix."""
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.01)


# -- item 4: "stop" stops what waits for a retry ---------------------------------------------


async def test_a_reply_waiting_for_a_retry_is_not_sent_after_stop(sessions: Sessions) -> None:
    [(item, lead_id, phone)] = await make_rows(sessions, 1, channel="whatsapp")
    channel = Gate("whatsapp", outcomes={phone: NotSent("Graph 500 (131000)")})
    dispatcher = Dispatcher(sessions, {"whatsapp": channel}, backoff=(timedelta(seconds=5),) * 3)
    assert await dispatcher.deliver(item, NOW) == "pending"  # in backoff
    async with sessions.begin() as session:  # the prospect says STOP meanwhile
        await session.execute(update(Lead).where(Lead.id == lead_id).values(opted_out_at=NOW + S))
    channel.outcomes.clear()
    assert await dispatcher.deliver_due(NOW + timedelta(minutes=1)) == 1
    row = (await rows(sessions))[item]
    assert channel.started == [phone]  # the retry never reached the channel
    assert row.state == "failed" and "opted out" in (row.error or "")
    assert await dispatcher.deliver_due(NOW + timedelta(hours=1)) == 0


async def test_an_email_follow_up_to_a_suppressed_address_is_not_sent(
    sessions: Sessions, tmp_path: Path
) -> None:
    cadence = compressed(tmp_path)
    sweeper, channel = make_sweeper(sessions, cadence)
    sweeper.dispatcher = None  # enqueue only: the row waits in the outbox
    lead_id = await make_lead(sessions)
    async with sessions.begin() as session:
        await start_sequence(session, lead_id, "new_lead", cadence=cadence, now=NOW)
    result = await sweeper.sweep(NOW)
    [item] = result.outbox_ids
    async with sessions.begin() as session:  # an unsubscribe lands before the send
        await suppress(
            session,
            "Dana1@example.com",
            reason=SuppressionReason.UNSUBSCRIBE,
            detail=None,
            now=NOW,
        )
    dispatcher = Dispatcher(sessions, {"email": channel})
    assert await dispatcher.deliver(item, NOW) == "failed"
    assert channel.sent == []
    row = (await rows(sessions))[item]
    assert "suppressed (unsubscribe)" in (row.error or "")
    async with sessions() as session:
        touch = await session.scalar(select(Touch).where(Touch.outbox_id == item))
        lead = await session.get_one(Lead, lead_id)
    assert touch is not None and (touch.status, touch.sent_at) == ("failed", None)
    assert "suppressed" in (touch.note or "")
    assert lead.stage == "new"  # nothing went out: not contacted


async def test_email_to_a_lead_marked_unreachable_is_not_sent(sessions: Sessions) -> None:
    [(item, lead_id, _)] = await make_rows(sessions, 1, channel="email", email=True)
    async with sessions.begin() as session:
        await session.execute(
            update(Lead).where(Lead.id == lead_id).values(email_status="bounced: 550 5.1.1")
        )
    channel = RecordingChannel("email")
    assert await Dispatcher(sessions, {"email": channel}).deliver(item, NOW) == "failed"
    assert channel.sent == []


async def test_a_rep_notification_about_an_opted_out_lead_still_reaches_the_rep(
    sessions: Sessions,
) -> None:
    [(_, lead_id, phone)] = await make_rows(sessions, 1, channel="whatsapp")
    rep_phone = "+14155559999"
    async with sessions.begin() as session:
        await session.execute(update(Lead).where(Lead.id == lead_id).values(opted_out_at=NOW))
        await suppress(
            session, phone, reason=SuppressionReason.REPLY_OPTOUT, detail="STOP", now=NOW
        )
        session.add(Rep(name="Ana", email="ana@seller.com", whatsapp=rep_phone, created_at=NOW))
        # Addressed to the rep; linked to the lead or not, the prospect's opt-out is not theirs.
        linked = await enqueue(
            session,
            key="rep:1:linked",
            channel="whatsapp",
            recipient=rep_phone,
            payload={"text": "Lead qualified"},
            now=NOW,
            lead_id=lead_id,
        )
        plain = await enqueue(
            session,
            key="rep:1:plain",
            channel="email",
            recipient="ana@seller.com",
            payload={"text": "Lead qualified"},
            now=NOW,
        )
    assert linked is not None and plain is not None
    channel = RecordingChannel("whatsapp")
    states = await Dispatcher(sessions, {"whatsapp": channel, "email": channel}).deliver_many(
        [linked, plain], NOW
    )
    assert states == {linked: "sent", plain: "sent"}
    assert sorted(r for r, _ in channel.sent) == sorted([rep_phone, "ana@seller.com"])


# -- items 26, 27: a slow send delays only itself; a crash strands nothing --------------------


async def test_each_outcome_is_recorded_as_it_completes(sessions: Sessions) -> None:
    (slow, _, slow_to), (fast, _, fast_to) = await make_rows(sessions, 2)
    channel = Gate(hang={slow_to})
    task = asyncio.create_task(
        Dispatcher(sessions, {"test": channel}).deliver_many([slow, fast], NOW)
    )
    try:
        await asyncio.wait_for(channel.hanging.wait(), 5)

        async def fast_recorded() -> bool:
            return (await rows(sessions))[fast].state == "sent"

        await until(fast_recorded)  # while the other send still hangs
        assert (await rows(sessions))[slow].state == "sending"
        channel.release.set()
        assert await task == {slow: "sent", fast: "sent"}
    finally:
        channel.release.set()
        await asyncio.gather(task, return_exceptions=True)


async def test_after_a_crash_only_attempted_rows_are_uncertain(sessions: Sessions) -> None:
    (refused, _, refused_to), (hung, _, hung_to), (never, _, never_to) = await make_rows(
        sessions, 3
    )
    channel = Gate(outcomes={refused_to: NotSent("Graph 500 (131000)")}, hang={hung_to})
    dispatcher = Dispatcher(sessions, {"test": channel}, backoff=(timedelta(seconds=5),) * 3)
    # One at a time: the third row waits behind the hanging second one.
    task = asyncio.create_task(dispatcher.deliver_many([refused, hung, never], NOW, concurrency=1))
    await asyncio.wait_for(channel.hanging.wait(), 5)
    state = await rows(sessions)
    assert state[refused].state == "pending"  # recorded when Graph refused it, not at the end
    task.cancel()  # the worker dies mid-batch
    await asyncio.gather(task, return_exceptions=True)
    assert channel.started == [refused_to, hung_to]

    reaper = Dispatcher(sessions, {"test": Gate()})
    assert await reaper.reap(NOW + timedelta(seconds=5)) == 0  # its worker may be alive
    # The claim that never started is taken back within seconds: a prospect is waiting.
    assert await reaper.reap(NOW + timedelta(seconds=15)) == 1
    state = await rows(sessions)
    assert (state[never].state, state[never].attempts) == ("pending", 0)  # never attempted
    assert state[hung].state == "sending"  # its request may still be out
    assert await reaper.reap(NOW + timedelta(minutes=4)) == 0
    assert await reaper.reap(NOW + timedelta(minutes=6)) == 1
    state = await rows(sessions)
    assert state[hung].state == "uncertain"  # its request may have left
    later = Gate()
    assert await Dispatcher(sessions, {"test": later}).deliver_due(NOW + timedelta(minutes=7)) == 2
    assert sorted(later.started) == sorted([refused_to, never_to])
    state = await rows(sessions)
    assert [state[i].state for i in (refused, hung, never)] == ["sent", "uncertain", "sent"]


async def test_a_row_reaped_and_claimed_again_is_not_sent_by_its_first_claim(
    sessions: Sessions,
) -> None:
    """The attempt-start mark is fenced on the claim: a stalled worker that wakes up after
    its claim was reaped and taken by another does not send the row a second time."""
    [(item, _, to)] = await make_rows(sessions, 1)
    stalled = Dispatcher(sessions, {"test": Gate()})
    [first] = (await stalled._claim([item], NOW))[0]  # claimed, then the worker stalls
    other = Gate()
    reaper = Dispatcher(sessions, {"test": other})
    assert await reaper.reap(NOW + timedelta(minutes=6)) == 1
    assert await reaper.deliver(item, NOW + timedelta(minutes=6)) == "sent"
    assert await stalled._starts.submit([first]) == [False]  # its attempt never starts
    assert other.started == [to] and (await rows(sessions))[item].state == "sent"


# -- item 3: recording survives a deadlock ----------------------------------------------------


async def test_recording_survives_a_transaction_locking_leads_in_the_opposite_order(
    engine: AsyncEngine, sessions: Sessions
) -> None:
    if not is_postgres(engine):
        pytest.skip("row locks and deadlocks: Postgres")
    (first, lead_a, a), (second, lead_b, b) = await make_rows(sessions, 2)
    both = asyncio.Event()

    class Together(Gate):
        """Both sends return in the same loop turn, so one transaction records both."""

        async def send(self, recipient: str, payload: Mapping[str, Any]) -> Receipt:
            self.started.append(recipient)
            if len(self.started) == 2:
                both.set()
            await both.wait()
            return Receipt(external_id=f"ext-{recipient}")

    async with engine.connect() as other, engine.connect() as observer:
        await other.execute(text("SET deadlock_timeout = '20s'"))  # we are the victim, if any
        await other.execute(update(Lead).where(Lead.id == lead_b).values(updated_at=NOW))
        pid = await other.scalar(text("SELECT pg_backend_pid()"))
        task = asyncio.create_task(
            Dispatcher(sessions, {"test": Together()}).deliver_many([first, second], NOW)
        )

        async def recording_waits_for_b() -> bool:
            waiting = await observer.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND pid <> :pid AND query ILIKE '%leads%'"
                ),
                {"pid": pid},
            )
            await observer.rollback()
            return bool(waiting)

        await until(recording_waits_for_b, timeout=10)
        # Now lock lead A, which the recording holds: a deadlock, which aborts the recording.
        await other.execute(update(Lead).where(Lead.id == lead_a).values(updated_at=NOW))
        await other.commit()
        states = await asyncio.wait_for(task, 30)
    assert states == {first: "sent", second: "sent"}
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 2
        touched = await session.scalar(
            select(func.count()).select_from(Lead).where(Lead.last_outbound_at == NOW)
        )
    assert touched == 2
    assert {r.external_id for r in (await rows(sessions)).values()} == {f"ext-{a}", f"ext-{b}"}


# -- item 12: a touch follows its delivery ----------------------------------------------------


class Refusing(RecordingChannel):
    """An SMTP server that is down: every send surely did not go out."""

    def __init__(self, *, transient: bool) -> None:
        super().__init__("email")
        self.transient = transient

    async def send(self, recipient: str, payload: Mapping[str, Any]) -> Receipt:
        raise NotSent("connection refused", code="smtp_0", is_transient=self.transient)


@pytest.mark.parametrize("transient", [True, False])
async def test_a_refused_touch_is_not_sent_and_does_not_contact_the_lead(
    sessions: Sessions, tmp_path: Path, transient: bool
) -> None:
    cadence = compressed(tmp_path)
    sweeper, _ = make_sweeper(sessions, cadence, Refusing(transient=transient))
    lead_id = await make_lead(sessions)
    async with sessions.begin() as session:
        await start_sequence(session, lead_id, "new_lead", cadence=cadence, now=NOW)
    await sweeper.sweep(NOW)
    async with sessions() as session:
        touch = await session.scalar(select(Touch).where(Touch.step == "first_reply"))
        lead = await session.get_one(Lead, lead_id)
    assert touch is not None and touch.sent_at is None
    assert touch.status == ("queued" if transient else "failed")  # queued: a retry is due
    assert lead.stage == "new"
    if not transient:
        assert "connection refused" in (touch.note or "")
        return
    # The server is back: the retry goes out, and only now the touch is sent.
    assert sweeper.dispatcher is not None
    sweeper.dispatcher.channels["email"] = RecordingChannel()
    assert await sweeper.dispatcher.deliver_due(NOW + timedelta(minutes=1)) == 1
    async with sessions() as session:
        touch = await session.get_one(Touch, touch.id)
        lead = await session.get_one(Lead, lead_id)
    assert (touch.status, touch.sent_at) == ("sent", NOW + timedelta(minutes=1))
    assert lead.stage == "contacted"


async def test_dormancy_counts_only_touches_that_went_out(
    sessions: Sessions, tmp_path: Path
) -> None:
    cadence = compressed(tmp_path)
    sweeper, _ = make_sweeper(sessions, cadence, Refusing(transient=True))
    lead_id = await make_lead(sessions, stage="contacted")
    async with sessions.begin() as session:
        await start_sequence(session, lead_id, "new_lead", cadence=cadence, now=NOW)
    for second in range(16):  # every step falls due; none gets through
        await sweeper.sweep(NOW + second * S)
    assert await mark_dormant(sessions, cadence, now=NOW + timedelta(hours=1)) == 0
    async with sessions() as session:
        statuses = set(await session.scalars(select(Touch.status)))
        lead = await session.get_one(Lead, lead_id)
    assert statuses == {"queued"} and lead.stage == "contacted"


async def test_an_uncertain_send_makes_its_touch_uncertain(
    sessions: Sessions, tmp_path: Path
) -> None:
    cadence = compressed(tmp_path)
    sweeper, _ = make_sweeper(sessions, cadence)
    sweeper.dispatcher = None
    lead_id = await make_lead(sessions)
    async with sessions.begin() as session:
        await start_sequence(session, lead_id, "new_lead", cadence=cadence, now=NOW)
    [item] = (await sweeper.sweep(NOW)).outbox_ids
    channel = Gate("email", hang={"dana1@example.com"})
    task = asyncio.create_task(Dispatcher(sessions, {"email": channel}).deliver(item, NOW))
    await asyncio.wait_for(channel.hanging.wait(), 5)
    task.cancel()  # the worker dies while the request is out
    await asyncio.gather(task, return_exceptions=True)
    assert await Dispatcher(sessions, {}).reap(NOW + timedelta(minutes=6)) == 1
    async with sessions() as session:
        touch = await session.scalar(select(Touch).where(Touch.outbox_id == item))
    assert touch is not None and touch.status == "uncertain" and touch.sent_at is None
