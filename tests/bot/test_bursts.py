"""The burst scheduler: one turn per burst, another when messages arrive during a turn."""

from __future__ import annotations

import asyncio

import pytest

from bot.whatsapp.bursts import BurstScheduler


async def test_a_burst_is_one_turn_and_late_messages_get_another() -> None:
    calls: list[str] = []
    # One "turn is running" event per sender: the two turns are released in the same slot
    # and either may start first; the late kick below must come while +1's own turn runs.
    running = {"+1": asyncio.Event(), "+2": asyncio.Event()}
    release = asyncio.Event()

    async def handle(sender: str) -> None:
        calls.append(sender)
        running[sender].set()
        await release.wait()

    bursts = BurstScheduler(handle, window=0.01)
    for _ in range(3):
        bursts.kick("+1")
    bursts.kick("+2")
    await asyncio.wait_for(running["+1"].wait(), timeout=5)
    assert calls.count("+1") == 1  # the burst of three kicks is one turn
    assert bursts.pending() == {"+1", "+2"}
    bursts.kick("+1")  # arrives while +1's turn runs: a second turn follows
    release.set()
    await bursts.settle(timeout=5)
    assert sorted(calls) == ["+1", "+1", "+2"]
    assert bursts.pending() == set()


async def test_a_kick_before_the_turn_starts_joins_that_turn() -> None:
    # What the old version of the test above tripped on when +2's turn started first: a
    # message that comes before its sender's turn has started belongs to that burst.
    calls: list[str] = []

    async def handle(sender: str) -> None:
        calls.append(sender)

    bursts = BurstScheduler(handle, window=0.05)
    bursts.kick("+1")
    bursts.kick("+1")
    await bursts.settle(timeout=5)
    assert calls == ["+1"]


async def test_close_drops_waiting_turns_and_refuses_new_ones() -> None:
    calls: list[str] = []

    async def handle(sender: str) -> None:
        calls.append(sender)

    bursts = BurstScheduler(handle, window=60)
    bursts.kick("+1")
    await bursts.close(timeout=5)
    bursts.kick("+2")
    assert calls == []
    assert bursts.pending() == set()


async def test_senders_kicked_together_start_their_turns_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[str] = []
    seen_after_yield: dict[str, list[str]] = {}

    async def handle(sender: str) -> None:
        started.append(sender)
        await asyncio.sleep(0)  # one loop iteration: turns released with this one started
        seen_after_yield[sender] = list(started)

    bursts = BurstScheduler(handle, window=0.016)  # release grid: 2 ms
    loop = asyncio.get_running_loop()
    real_time, readings = loop.time, iter(range(100))
    # A slow kick: each clock reading 4 ms after the previous one (two grid slots apart).
    monkeypatch.setattr(loop, "time", lambda: real_time() + next(readings) * 0.004)
    bursts.kick("+1", "+2", "+3")  # the three senders of one webhook body
    monkeypatch.undo()
    await bursts.settle(timeout=5)

    assert sorted(started) == ["+1", "+2", "+3"]
    # Same slot, same loop iteration: what lets the processor put them in one transaction.
    assert all(sorted(seen) == ["+1", "+2", "+3"] for seen in seen_after_yield.values())
