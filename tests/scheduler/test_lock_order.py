"""The sweeper and a reply follow the one lock order (issue 12, item 11): lead, then touches.

A reply locks its lead (it writes ``last_inbound_at``) and then cancels the lead's touches.
A sweep recording a batch used to lock its touch rows first and the lead after (moving a
new lead to contacted, or a rep's approval doing the same): Postgres then found a deadlock
and aborted one of the two. The tests stop the sweep inside its recording transaction, let
the reply run until Postgres says it waits for a lock, then let the sweep go on; both must
commit. Row locks only exist on Postgres.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

import scheduler.followups.sweeper as sweeper_module
from scheduler.followups import gates
from scheduler.followups.touches import cancel_pending, start_sequence
from scheduler.store.engine import is_postgres
from scheduler.store.models import Lead, Touch
from tests.scheduler.cadence_support import NOW, Sessions, compressed, make_lead, make_sweeper

S = timedelta(seconds=1)


class Pause:
    """Stops the sweeper at its n-th ``load_facts`` call until released."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, call: int) -> None:
        self.reached, self.release = asyncio.Event(), asyncio.Event()
        self.calls = 0
        original = gates.load_facts

        async def paused(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == call:
                self.reached.set()
                await self.release.wait()
            return await original(*args, **kwargs)

        monkeypatch.setattr(sweeper_module, "load_facts", paused)


async def reply(sessions: Sessions, lead_id: int, pid: asyncio.Future[int]) -> None:
    """What a WhatsApp or email reply does: write the lead, then cancel its touches."""
    async with sessions.begin() as session:
        pid.set_result(int(await session.scalar(text("SELECT pg_backend_pid()"))))
        lead = await session.get(Lead, lead_id)
        assert lead is not None
        lead.last_inbound_at = NOW + S
        await session.flush()
        await cancel_pending(session, lead_id, reason="prospect replied", now=NOW + S)


async def waits_for_a_lock(sessions: Sessions, pid: int) -> bool:
    async with sessions() as session:
        found = await session.scalar(
            text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        )
    return bool(found == "Lock")


async def race(
    sessions: Sessions, lead_id: int, pause: Pause, sweep: Callable[[], Coroutine[Any, Any, Any]]
) -> None:
    """Run the sweep up to its pause, the reply until it blocks (or ends), then both."""
    sweeping = asyncio.create_task(sweep())
    await asyncio.wait_for(pause.reached.wait(), 10)
    pid: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    replying = asyncio.create_task(reply(sessions, lead_id, pid))
    await asyncio.wait_for(asyncio.shield(pid), 10)
    async with asyncio.timeout(10):
        # Waiting for a state, not for time: the reply is blocked (or already done).
        while not replying.done() and not await waits_for_a_lock(sessions, pid.result()):
            await asyncio.sleep(0.01)
    pause.release.set()
    async with asyncio.timeout(20):
        results = await asyncio.gather(sweeping, replying, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == [], errors


@pytest.fixture
def postgres_only(engine: AsyncEngine) -> None:
    if not is_postgres(engine):
        pytest.skip("row locks and deadlocks exist on Postgres only")


@pytest.mark.usefixtures("postgres_only")
async def test_a_sweep_and_a_reply_of_the_same_lead_do_not_deadlock(
    sessions: Sessions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cadence = compressed(tmp_path)
    sweeper, channel = make_sweeper(sessions, cadence)
    lead_id = await make_lead(sessions, stage="new")
    async with sessions.begin() as session:
        await start_sequence(session, lead_id, "new_lead", cadence=cadence, now=NOW)
    # The second load_facts is the one inside the recording transaction.
    pause = Pause(monkeypatch, call=2)

    await race(sessions, lead_id, pause, lambda: sweeper.sweep_once(NOW))

    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
        steps = dict((await session.execute(select(Touch.step, Touch.status))).all())
    assert lead is not None and lead.stage == "contacted" and lead.last_inbound_at == NOW + S
    assert steps.pop("first_reply") == "sent" and len(channel.sent) == 1
    assert set(steps.values()) == {"cancelled"}


@pytest.mark.usefixtures("postgres_only")
async def test_an_approval_and_a_reply_of_the_same_lead_do_not_deadlock(
    sessions: Sessions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cadence = compressed(tmp_path)
    sweeper, channel = make_sweeper(sessions, cadence)
    lead_id = await make_lead(sessions, stage="new")
    async with sessions.begin() as session:
        await start_sequence(session, lead_id, "approved", cadence=cadence, now=NOW)
    await sweeper.sweep(NOW)
    async with sessions() as session:
        touch_id = await session.scalar(select(Touch.id).where(Touch.step == "personal"))
    assert touch_id is not None
    pause = Pause(monkeypatch, call=1)

    await race(sessions, lead_id, pause, lambda: sweeper.approve(touch_id, by="dana", now=NOW))

    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
        steps = dict((await session.execute(select(Touch.step, Touch.status))).all())
    assert lead is not None and lead.stage == "contacted"
    assert steps == {"personal": "sent", "nudge": "cancelled"} and len(channel.sent) == 1
