"""A message somebody waits for is retried by the process that tried it, when its retry falls
due: not at the outbox job's next run, and not only if the scheduler process is alive."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from scheduler.delivery.outbox import FOLLOW_WITHIN, Dispatcher, NotSent
from tests.scheduler.test_outbox import NOW, ScriptedChannel, Sessions, make_item, state_of


def running_clock() -> Callable[[], datetime]:
    """A clock that starts at NOW and runs with real time (retries wait in real time)."""
    started = time.monotonic()
    return lambda: NOW + timedelta(seconds=time.monotonic() - started)


async def sent(sessions: Sessions, item_id: int, timeout: float = 5.0) -> None:
    """Wait (bounded) until the row is sent: polling a state, not a race fix."""
    async with asyncio.timeout(timeout):
        while (await state_of(sessions, item_id)).state != "sent":
            await asyncio.sleep(0.02)


async def test_a_refused_reply_is_retried_by_its_process_when_due(sessions: Sessions) -> None:
    item_id, _ = await make_item(sessions)
    channel = ScriptedChannel(NotSent("Graph 500 (131000)"))
    clock = running_clock()
    dispatcher = Dispatcher(
        sessions, {"test": channel}, clock=clock, backoff=(timedelta(seconds=0.3),) * 3
    )
    assert await dispatcher.deliver_and_follow([item_id], clock()) == {item_id: "pending"}
    await sent(sessions, item_id)  # nobody called the dispatcher again
    assert len(channel.sent) == 2
    assert (await state_of(sessions, item_id)).attempts == 2
    await dispatcher.close()


async def test_a_reply_held_back_by_a_pause_goes_when_the_pause_ends(sessions: Sessions) -> None:
    item_id, _ = await make_item(sessions)
    paused = NotSent("whatsapp sending is paused", code="paused", retry_after=0.3, attempted=False)
    channel = ScriptedChannel(paused, paused)
    clock = running_clock()
    dispatcher = Dispatcher(sessions, {"test": channel}, clock=clock)
    started = time.monotonic()
    await dispatcher.deliver_and_follow([item_id], clock())
    await sent(sessions, item_id)
    assert time.monotonic() - started >= 0.6  # not before each pause ended
    assert len(channel.sent) == 3
    assert (await state_of(sessions, item_id)).attempts == 1  # held back: the tries were free
    await dispatcher.close()


async def test_a_retry_due_later_is_left_to_the_outbox_job(sessions: Sessions) -> None:
    item_id, _ = await make_item(sessions)
    later = FOLLOW_WITHIN + timedelta(seconds=5)
    channel = ScriptedChannel(NotSent("Graph 500 (131000)"))
    clock = running_clock()
    dispatcher = Dispatcher(sessions, {"test": channel}, clock=clock, backoff=(later,) * 3)
    await dispatcher.deliver_and_follow([item_id], clock())
    async with asyncio.timeout(5):  # its retry time was read, and no retry was planned
        while dispatcher._following:
            await asyncio.sleep(0.01)
    assert len(channel.sent) == 1 and (await state_of(sessions, item_id)).state == "pending"


async def test_closing_drops_retries_not_yet_due(sessions: Sessions) -> None:
    item_id, _ = await make_item(sessions)
    channel = ScriptedChannel(NotSent("Graph 500 (131000)"))
    clock = running_clock()
    dispatcher = Dispatcher(
        sessions, {"test": channel}, clock=clock, backoff=(timedelta(seconds=20),) * 3
    )
    await dispatcher.deliver_and_follow([item_id], clock())
    async with asyncio.timeout(2):  # does not wait the 20 s
        await dispatcher.close()
    assert len(channel.sent) == 1 and (await state_of(sessions, item_id)).state == "pending"


async def test_the_outbox_job_follows_a_retry_due_before_its_next_run(sessions: Sessions) -> None:
    item_id, _ = await make_item(sessions)
    channel = ScriptedChannel(NotSent("Graph 500 (131000)"))
    clock = running_clock()
    dispatcher = Dispatcher(
        sessions, {"test": channel}, clock=clock, backoff=(timedelta(seconds=0.3),) * 3
    )
    assert await dispatcher.deliver_due(clock(), follow=True) == 1
    await sent(sessions, item_id)  # not a whole job period later: no second run was called
    assert len(channel.sent) == 2
    await dispatcher.close()
