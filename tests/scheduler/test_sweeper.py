"""The sweeper end to end on every backend: order, re-checks, approval, restarts, dormancy."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from scheduler.delivery.outbox import Dispatcher
from scheduler.errors import NotFoundError
from scheduler.followups.lifecycle import mark_dormant, start_reactivations
from scheduler.followups.touches import TouchStateError, cancel_pending, start_sequence
from scheduler.pipeline.stages import transition
from scheduler.store.models import Lead, OutboxItem, StageEvent, Suppression, Touch
from scheduler.store.suppressions import suppress
from scheduler.store.touches import claim_due
from tests.scheduler.cadence_support import (
    NOW,
    RecordingChannel,
    Sessions,
    compressed,
    make_lead,
    make_sweeper,
)

S = timedelta(seconds=1)


async def start(
    sessions: Sessions, cadence: object, lead_id: int, sequence: str = "new_lead", at: object = NOW
) -> None:
    async with sessions.begin() as session:
        await start_sequence(session, lead_id, sequence, cadence=cadence, now=at)  # type: ignore[arg-type]


async def statuses(sessions: Sessions, lead_id: int) -> dict[str, str]:
    async with sessions() as session:
        rows = await session.execute(
            select(Touch.step, Touch.status).where(Touch.lead_id == lead_id).order_by(Touch.id)
        )
    return {r.step: r.status for r in rows}


async def test_compressed_cadence_sends_every_step_in_order(
    sessions: Sessions, tmp_path: Path
) -> None:
    cadence = compressed(tmp_path)
    sweeper, channel = make_sweeper(sessions, cadence)
    lead_id = await make_lead(sessions)
    await start(sessions, cadence, lead_id)
    for second in range(16):
        await sweeper.sweep(NOW + second * S)
    texts = [p["text"] for _, p in channel.sent]
    assert len(texts) == 5
    assert texts[0].startswith("Hi Dana,") and "Thanks for reaching out to Acme" in texts[0]
    assert "https://calendly.com/acme/intro?" in texts[0] and "utm_content=" in texts[0]
    assert "https://acme.example/case" in texts[2]  # the cadence's resource link
    assert all(t.rstrip().endswith("Sam, Acme") for t in texts[1:4])  # the signature
    assert "close the loop" in texts[4]
    assert all(r == "dana1@example.com" for r, _ in channel.sent)
    async with sessions() as session:
        keys = list(await session.scalars(select(OutboxItem.key).order_by(OutboxItem.id)))
        lead = await session.get(Lead, lead_id)
    assert keys == [
        f"lead:{lead_id}:touch:new_lead:{s}:0"
        for s in ("first_reply", "day1", "day3", "day7", "day14")
    ]
    assert lead is not None and lead.stage == "contacted"  # the first touch moved it
    assert set((await statuses(sessions, lead_id)).values()) == {"sent"}


async def test_a_reply_cancels_the_rest(sessions: Sessions, tmp_path: Path) -> None:
    cadence = compressed(tmp_path)
    sweeper, channel = make_sweeper(sessions, cadence)
    lead_id = await make_lead(sessions)
    await start(sessions, cadence, lead_id)
    await sweeper.sweep(NOW + S)
    async with sessions.begin() as session:
        await session.execute(
            update(Lead).where(Lead.id == lead_id).values(last_inbound_at=NOW + 2 * S)
        )
        assert await cancel_pending(session, lead_id, reason="replied", now=NOW + 2 * S) == 3
    await sweeper.sweep(NOW + 20 * S)
    assert len(channel.sent) == 2
    assert await statuses(sessions, lead_id) == {
        "first_reply": "sent",
        "day1": "sent",
        "day3": "cancelled",
        "day7": "cancelled",
        "day14": "cancelled",
    }


@pytest.mark.parametrize("change", ["replied", "opted_out", "suppressed", "lost", "paused"])
async def test_the_lead_is_rechecked_before_each_touch(
    sessions: Sessions, tmp_path: Path, change: str
) -> None:
    cadence = compressed(tmp_path)
    sweeper, channel = make_sweeper(sessions, cadence)
    lead_id = await make_lead(sessions)
    await start(sessions, cadence, lead_id)
    await sweeper.sweep(NOW)
    async with sessions.begin() as session:  # nobody called cancel_pending
        values: dict[str, object] = {  # type: ignore[assignment]
            "replied": {"last_inbound_at": NOW + S},
            "opted_out": {"opted_out_at": NOW + S},
            "paused": {"bot_paused": True},
        }.get(change, {})
        if values:
            await session.execute(update(Lead).where(Lead.id == lead_id).values(**values))
        if change == "suppressed":
            session.add(Suppression(address="dana1@example.com", reason="bounce", created_at=NOW))
        if change == "lost":
            await transition(session, lead_id, "lost", reason="no budget", actor="rep", now=NOW)
    result = await sweeper.sweep(NOW + 2 * S)
    assert len(channel.sent) == 1 and result.skipped == 1
    state = await statuses(sessions, lead_id)
    assert state["day1"] == "skipped"
    # Final reasons end the cadence; a paused bot only skips what falls due meanwhile.
    assert state["day14"] == ("pending" if change == "paused" else "cancelled")


async def test_no_reply_moves_the_lead_to_dormant(sessions: Sessions, tmp_path: Path) -> None:
    cadence = compressed(tmp_path)
    sweeper, _ = make_sweeper(sessions, cadence)
    lead_id, replied = await make_lead(sessions, 1), await make_lead(sessions, 2)
    for lead in (lead_id, replied):
        await start(sessions, cadence, lead)
    for second in range(15):
        await sweeper.sweep(NOW + second * S)
    async with sessions.begin() as session:
        await session.execute(
            update(Lead).where(Lead.id == replied).values(last_inbound_at=NOW + 14 * S)
        )
    assert await mark_dormant(sessions, cadence, now=NOW + 40 * S) == 0  # after_last not over
    assert await mark_dormant(sessions, cadence, now=NOW + 44 * S) == 1
    assert await mark_dormant(sessions, cadence, now=NOW + 50 * S) == 0
    async with sessions() as session:
        stages = {r.id: r.stage for r in await session.execute(select(Lead.id, Lead.stage))}
        event = await session.scalar(select(StageEvent).where(StageEvent.to_stage == "dormant"))
    assert stages == {lead_id: "dormant", replied: "contacted"}
    assert event is not None and event.actor == "scheduler" and "new_lead" in (event.reason or "")


async def test_reactivation_starts_once_per_dormancy(sessions: Sessions, tmp_path: Path) -> None:
    cadence = compressed(tmp_path)
    lead_id = await make_lead(sessions)
    async with sessions.begin() as session:
        await transition(session, lead_id, "contacted", reason=None, actor="t", now=NOW)
        await transition(session, lead_id, "dormant", reason=None, actor="t", now=NOW)
    assert await start_reactivations(sessions, cadence, now=NOW + timedelta(days=59)) == 0
    later = NOW + timedelta(days=61)
    assert await start_reactivations(sessions, cadence, now=later) == 1
    assert await start_reactivations(sessions, cadence, now=later) == 0
    assert await statuses(sessions, lead_id) == {"reactivate": "pending"}


async def test_approval_flow(sessions: Sessions, tmp_path: Path) -> None:
    cadence = compressed(tmp_path)
    sweeper, channel = make_sweeper(sessions, cadence)
    lead_id = await make_lead(sessions)
    await start(sessions, cadence, lead_id, "approved")
    result = await sweeper.sweep(NOW)
    assert (result.awaiting_approval, channel.sent) == (1, [])
    async with sessions() as session:
        touch = await session.scalar(select(Touch).where(Touch.step == "personal"))
    assert touch is not None and touch.status == "awaiting_approval"
    assert touch.draft and touch.draft.startswith("Hi Dana")
    assert touch.meta["template"] == "personal_follow_up.txt"
    approved = await sweeper.approve(touch.id, by="rep@acme", text="Hi Dana, edited.", now=NOW)
    assert approved.status == "sent" and approved.approved_by == "rep@acme"
    assert [p["text"] for _, p in channel.sent] == ["Hi Dana, edited."]
    with pytest.raises(TouchStateError):
        await sweeper.approve(touch.id, by="rep@acme", now=NOW)
    with pytest.raises(NotFoundError):
        await sweeper.approve(999_999, by="rep@acme", now=NOW)


async def test_a_waiting_draft_is_superseded_by_the_next_step(
    sessions: Sessions, tmp_path: Path
) -> None:
    cadence = compressed(tmp_path)
    sweeper, channel = make_sweeper(sessions, cadence)
    lead_id = await make_lead(sessions)
    await start(sessions, cadence, lead_id, "approved")
    await sweeper.sweep(NOW)
    await sweeper.sweep(NOW + 5 * S)
    assert await statuses(sessions, lead_id) == {"personal": "skipped", "nudge": "sent"}
    assert len(channel.sent) == 1


async def test_a_restart_mid_cadence_loses_nothing_and_repeats_nothing(
    sessions: Sessions, tmp_path: Path
) -> None:
    cadence = compressed(tmp_path)
    lead_id = await make_lead(sessions)
    await start(sessions, cadence, lead_id)
    first, channel = make_sweeper(sessions, cadence)
    await first.sweep(NOW + S)  # first_reply and day1 sent
    # A process dies holding a claim on day3 (claimed, never recorded) ...
    assert [c.step for c in await claim_due(sessions, now=NOW + 3 * S, limit=1)] == ["day3"]
    # ... and another dies after recording day7 but before delivering it.
    crashed, _ = make_sweeper(sessions, cadence)
    crashed.dispatcher = None
    await crashed.sweep_once(NOW + 7 * S)
    # A fresh process: the reaper frees day3 once the lease is over, the outbox delivers day7.
    fresh, _ = make_sweeper(sessions, cadence, channel)
    after_lease = NOW + timedelta(minutes=6)
    await fresh.reap(after_lease)
    assert fresh.dispatcher is not None
    await fresh.dispatcher.deliver_due(after_lease)
    for _ in range(3):
        await fresh.sweep(after_lease)
        await fresh.dispatcher.deliver_due(after_lease)
    steps = [p["touch_id"] for _, p in channel.sent]
    assert len(steps) == 5 and len(set(steps)) == 5
    assert set((await statuses(sessions, lead_id)).values()) == {"sent"}


async def test_parallel_sweepers_never_send_twice(sessions: Sessions, tmp_path: Path) -> None:
    cadence = compressed(tmp_path)
    for n in range(40):
        await start(sessions, cadence, await make_lead(sessions, n))
    channel = RecordingChannel()
    sweepers = [make_sweeper(sessions, cadence, channel, batch=7)[0] for _ in range(3)]
    for second in (0, 3, 14):
        await asyncio.gather(*(s.sweep(NOW + second * S) for s in sweepers))
    ids = [p["touch_id"] for _, p in channel.sent]
    assert len(ids) == 200 and len(set(ids)) == 200
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxItem)) == 200
    assert isinstance(sweepers[0].dispatcher, Dispatcher)


async def test_a_sweep_delivers_each_batch_in_one_call(sessions: Sessions, tmp_path: Path) -> None:
    cadence = compressed(tmp_path)
    sweeper, channel = make_sweeper(sessions, cadence, batch=4)
    calls: list[list[int]] = []
    assert sweeper.dispatcher is not None
    deliver_many = sweeper.dispatcher.deliver_many

    async def recording(
        ids: Sequence[int], now: datetime, *, concurrency: int = 8
    ) -> dict[int, str]:
        calls.append(list(ids))
        return await deliver_many(ids, now, concurrency=concurrency)

    sweeper.dispatcher.deliver_many = recording  # type: ignore[method-assign]
    for n in range(1, 10):
        await start(sessions, cadence, await make_lead(sessions, n, stage="contacted"))
    result = await sweeper.sweep(NOW + 1 * S)  # first_reply and day1 of all nine are due
    assert result.sent == 18 and len(channel.sent) == 18
    assert [len(ids) for ids in calls] == [4, 4, 4, 4, 2]
    async with sessions() as session:
        states = set(await session.scalars(select(OutboxItem.state)))
    assert states == {"sent"}


async def test_an_address_suppressed_while_the_draft_waited_is_not_written_to(
    sessions: Sessions, tmp_path: Path
) -> None:
    cadence = compressed(tmp_path)
    sweeper, channel = make_sweeper(sessions, cadence)
    lead_id = await make_lead(sessions)
    await start(sessions, cadence, lead_id, "approved")
    await sweeper.sweep(NOW)
    async with sessions.begin() as session:
        touch = await session.scalar(select(Touch).where(Touch.step == "personal"))
        assert touch is not None and touch.status == "awaiting_approval"
        await suppress(session, "dana1@example.com", reason="complaint", detail=None, now=NOW)
    approved = await sweeper.approve(touch.id, by="rep@acme", now=NOW)
    assert (approved.status, approved.note) == ("skipped", "suppressed")
    assert channel.sent == []
    async with sessions() as session:
        assert (await session.scalars(select(OutboxItem))).all() == []
