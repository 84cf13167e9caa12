"""Erasure on every backend: what each table keeps, suppression by keyed hash, and the one
lock order (on Postgres, where transactions wait for each other's rows)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from scheduler.delivery.outbox import Dispatcher, enqueue
from scheduler.errors import NotFoundError
from scheduler.followups.gates import load_facts
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.store.erasure import CANCELLED_NOTE, ERASED, erase_lead
from scheduler.store.models import Lead, Message, OutboxItem, StageEvent, Suppression, Touch
from scheduler.store.suppressions import (
    SuppressionReason,
    address_hash,
    find_suppression,
    suppress,
    use_hash_key,
)

NOW = datetime(2026, 12, 6, 5, 0, tzinfo=UTC)
KEY = b"k" * 32
EMAIL = "ada@lovelace.example"
PHONE = "+14155550177"
Sessions = async_sessionmaker[AsyncSession]


async def _lead(sessions: Sessions, *, opted_out: bool = False) -> int:
    async with sessions.begin() as session:
        lead = (
            await intake(
                session,
                LeadIn(name="Ada Lovelace", email=EMAIL, phone=PHONE, company="Engines"),
                default_region="US",
                now=NOW,
            )
        ).lead
        if opted_out:
            lead.opted_out_at = NOW
        return lead.id


async def _erase(sessions: Sessions, lead_id: int, *, actor: str = "test") -> None:
    async with sessions.begin() as session:
        await erase_lead(session, lead_id, actor=actor, hash_key=KEY, now=NOW)


async def test_a_suppressed_address_stays_suppressed_only_as_a_keyed_hash(
    sessions: Sessions,
) -> None:
    lead_id = await _lead(sessions)
    async with sessions.begin() as session:
        await suppress(session, EMAIL, reason=SuppressionReason.UNSUBSCRIBE, detail=EMAIL, now=NOW)

    await _erase(sessions, lead_id)

    async with sessions() as session:
        rows = list(await session.scalars(select(Suppression)))
        assert [(r.address, r.reason, r.detail) for r in rows] == [
            (address_hash(EMAIL, KEY), "unsubscribe", None)
        ]
        # Without the key nobody can tell whose entry it is, nor match it.
        assert await find_suppression(session, EMAIL) is None
    keyed = async_sessionmaker(sessions.kw["bind"], expire_on_commit=False)
    use_hash_key(keyed, KEY)
    async with keyed() as session:
        found = await find_suppression(session, " Ada@Lovelace.example ")
        assert found is not None and found.reason == "unsubscribe"
        assert await find_suppression(session, "someone@else.example") is None
        # The phone was never suppressed and the lead had not opted out: it is not now.
        assert await find_suppression(session, PHONE) is None


async def test_an_opted_out_person_is_suppressed_on_every_address_they_had(
    sessions: Sessions,
) -> None:
    lead_id = await _lead(sessions, opted_out=True)
    await _erase(sessions, lead_id)
    await _erase(sessions, lead_id)  # again: nothing doubles
    keyed = async_sessionmaker(sessions.kw["bind"], expire_on_commit=False)
    use_hash_key(keyed, KEY)
    async with keyed() as session:
        assert await find_suppression(session, EMAIL) is not None
        assert await find_suppression(session, PHONE) is not None
        assert await session.scalar(select(func.count()).select_from(Suppression)) == 2
        stored = set(await session.scalars(select(Suppression.address)))
    assert all(a.startswith("hmac-sha256:") for a in stored)


async def test_a_returning_person_erased_twice_keeps_one_hashed_entry(sessions: Sessions) -> None:
    first = await _lead(sessions)
    async with sessions.begin() as session:
        await suppress(session, EMAIL, reason=SuppressionReason.UNSUBSCRIBE, detail=None, now=NOW)
    await _erase(sessions, first)
    second = await _lead(sessions)  # the same person comes back as a new lead
    async with sessions.begin() as session:
        await suppress(session, EMAIL, reason=SuppressionReason.HARD_BOUNCE, detail=None, now=NOW)
    assert second != first

    await _erase(sessions, second)

    async with sessions() as session:
        rows = list(await session.scalars(select(Suppression)))
    assert [(r.address, r.reason) for r in rows] == [(address_hash(EMAIL, KEY), "unsubscribe")]


async def test_the_send_gates_see_an_erased_opted_out_person_who_comes_back(
    sessions: Sessions,
) -> None:
    use_hash_key(sessions, KEY)  # as the app does with LEADBOT_SECRET_KEY
    await _erase(sessions, await _lead(sessions, opted_out=True))
    returning = await _lead(sessions)  # same email and phone, a new lead

    async with sessions() as session:
        facts = (await load_facts(session, {returning}, 0))[returning]

    assert facts.suppressed == {EMAIL, PHONE}
    assert facts.address("email") is None
    assert facts.address("whatsapp") is None


async def test_pending_work_is_cancelled_and_finished_work_keeps_its_dedupe_key(
    sessions: Sessions,
) -> None:
    lead_id = await _lead(sessions)
    async with sessions.begin() as session:
        for step, status in (("a", "pending"), ("b", "claimed"), ("c", "sent")):
            await session.execute(
                insert(Touch).values(
                    lead_id=lead_id,
                    sequence="s",
                    step=step,
                    cycle=0,
                    channel="email",
                    due_at=NOW,
                    status=status,
                    draft="Dear Ada",
                    note="for Ada",
                    meta={"x": 1},
                    claim_token="t" if status == "claimed" else None,
                    created_at=NOW,
                )
            )
        for key, state in (("pending", "pending"), ("sending", "sending"), ("sent", "sent")):
            item = await enqueue(
                session,
                key=f"lead:{lead_id}:{key}",
                channel="email",
                recipient=EMAIL,
                payload={"text": "Dear Ada"},
                now=NOW - timedelta(days=1),
                lead_id=lead_id,
            )
            await session.execute(
                update(OutboxItem)
                .where(OutboxItem.id == item)
                .values(state=state, external_id=f"ext-{key}", updated_at=NOW - timedelta(days=1))
            )

    await _erase(sessions, lead_id)

    async with sessions() as session:
        touches = {t.step: t for t in await session.scalars(select(Touch))}
        outbox = {o.key.rsplit(":", 1)[1]: o for o in await session.scalars(select(OutboxItem))}
        lead = await session.get(Lead, lead_id)
    assert {s: (t.status, t.draft, t.meta, t.claim_token) for s, t in touches.items()} == {
        "a": ("cancelled", None, {}, None),
        "b": ("cancelled", None, {}, None),
        "c": ("sent", None, {}, None),
    }
    assert touches["a"].note == CANCELLED_NOTE and touches["c"].note is None
    assert {k: (o.state, o.payload, o.recipient, o.external_id) for k, o in outbox.items()} == {
        "pending": ("failed", {}, ERASED, "ext-pending"),
        "sending": ("sending", {}, ERASED, "ext-sending"),  # its outcome is still recorded
        "sent": ("sent", {}, ERASED, "ext-sent"),
    }
    assert outbox["pending"].error == CANCELLED_NOTE
    # Rows that only lost their personal data keep ``updated_at`` (the email caps use it).
    assert outbox["sent"].updated_at == NOW - timedelta(days=1)
    assert lead is not None
    assert (lead.name, lead.email, lead.phone, lead.company, lead.bot_paused) == (
        None,
        None,
        None,
        None,
        True,
    )
    assert lead.erased_at == NOW and lead.version == 2


async def test_the_history_stays_without_personal_reasons(sessions: Sessions) -> None:
    lead_id = await _lead(sessions)
    async with sessions.begin() as session:
        await session.execute(
            insert(StageEvent).values(
                lead_id=lead_id,
                from_stage="new",
                to_stage="lost",
                reason="Ada chose Babbage",
                actor="rep:rita",
                at=NOW,
            )
        )
        await session.execute(
            update(Lead).where(Lead.id == lead_id).values(stage="lost", lost_reason="Ada: no")
        )

    await _erase(sessions, lead_id, actor="dpo@seller.example")

    async with sessions() as session:
        events = list(await session.scalars(select(StageEvent).order_by(StageEvent.id)))
        lead = await session.get(Lead, lead_id)
    assert [(e.from_stage, e.to_stage, e.reason, e.actor) for e in events] == [
        (None, "new", None, "intake"),
        ("new", "lost", ERASED, "rep:rita"),
        ("lost", "lost", "erased", "dpo@seller.example"),
    ]
    assert lead is not None and (lead.stage, lead.lost_reason) == ("lost", ERASED)


async def test_an_unknown_lead_is_not_found_and_nothing_changes(sessions: Sessions) -> None:
    with pytest.raises(NotFoundError):
        await _erase(sessions, 424242)
    with pytest.raises(ValueError, match="secret key"):
        async with sessions.begin() as session:
            await erase_lead(session, 1, actor="x", hash_key=b"", now=NOW)


async def test_erasure_takes_the_lead_row_before_any_touch_or_outbox_row(
    engine: AsyncEngine, sessions: Sessions
) -> None:
    """A transaction that holds the lead and then updates its touches and outbox rows (the
    one lock order) never waits for a racing erasure: the erasure waits at the lead."""
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL (SQLite has one writer at a time)")
    lead_id = await _lead(sessions)
    async with sessions.begin() as session:
        await session.execute(
            insert(Touch).values(
                lead_id=lead_id,
                sequence="s",
                step="a",
                cycle=0,
                channel="email",
                due_at=NOW,
                status="pending",
                created_at=NOW,
            )
        )
        await enqueue(
            session,
            key="k",
            channel="email",
            recipient=EMAIL,
            payload={},
            now=NOW,
            lead_id=lead_id,
        )

    async with sessions.begin() as turn:
        await turn.execute(text("SET LOCAL lock_timeout = '5s'"))
        await turn.execute(select(Lead.id).where(Lead.id == lead_id).with_for_update())
        pid = await turn.scalar(text("SELECT pg_backend_pid()"))
        erasure = asyncio.create_task(_erase(sessions, lead_id))
        await _until_blocked_by(sessions, pid)
        # Raises (lock_timeout) if the erasure had taken these rows before the lead.
        await turn.execute(update(Touch).where(Touch.lead_id == lead_id).values(draft="x"))
        await turn.execute(
            update(OutboxItem).where(OutboxItem.lead_id == lead_id).values(attempts=1)
        )
    await asyncio.wait_for(erasure, timeout=10)
    async with sessions() as session:
        touch = await session.scalar(select(Touch))
    assert touch is not None and (touch.status, touch.draft) == ("cancelled", None)


async def _until_blocked_by(sessions: Sessions, pid: int) -> None:
    """Return once another backend waits for a lock ``pid`` holds (bounded: 10 s)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE CAST(:pid AS integer) = ANY(pg_blocking_pids(pid))"
    )
    async with sessions() as session:
        for _ in range(1000):
            if await session.scalar(query, {"pid": pid}):
                return
            await session.rollback()
            await asyncio.sleep(0.01)  # polling an observable condition, not a guess
    raise AssertionError("the erasure never waited for the lead's lock")


async def test_a_send_in_flight_during_erasure_writes_no_message_back(
    sessions: Sessions,
) -> None:
    """The message was already on its way when the person was erased: it is recorded as
    sent (never resent), but its text is not put back into the forgotten conversation."""
    from tests.scheduler.test_outbox_delivery import Gate

    lead_id = await _lead(sessions)
    async with sessions.begin() as session:
        item_id = await enqueue(
            session,
            key=f"lead:{lead_id}:reply",
            channel="test",
            recipient=PHONE,
            payload={"text": "Hi Ada, about your engines"},
            now=NOW,
            lead_id=lead_id,
        )
    assert item_id is not None
    channel = Gate(hang={PHONE})
    task = asyncio.create_task(
        Dispatcher(sessions, {"test": channel}).deliver_many([item_id], NOW)
    )
    try:
        await asyncio.wait_for(channel.hanging.wait(), 5)
        await _erase(sessions, lead_id)
        channel.release.set()
        assert await task == {item_id: "sent"}
    finally:
        channel.release.set()
        await asyncio.gather(task, return_exceptions=True)
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 0
        assert (await session.get(OutboxItem, item_id)).state == "sent"  # type: ignore[union-attr]
