"""GroupCommit: callers that arrive together share one batch, and get their own answers."""

from __future__ import annotations

import asyncio

import pytest

from scheduler.group_commit import GroupCommit


class Recorder:
    """run_many doubling numbers; fails the whole batch when it holds a 13."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.singles: list[int] = []
        self.release = asyncio.Event()
        self.release.set()

    async def run_many(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(items)
        await self.release.wait()
        if 13 in items:
            raise RuntimeError("one bad item spoils the transaction")
        return [ValueError(f"odd {i}") if i % 2 else i * 2 for i in items]

    async def run_one(self, item: int) -> int:
        self.singles.append(item)
        if item == 13:
            raise RuntimeError("13 alone")
        return item * 2


async def test_callers_arriving_together_share_one_batch() -> None:
    recorder = Recorder()
    runner = GroupCommit(recorder.run_many, name="t")
    results = await asyncio.gather(*(runner.submit(i) for i in (2, 4, 6)))
    assert results == [4, 8, 12]
    assert recorder.batches == [[2, 4, 6]]


async def test_callers_arriving_during_a_batch_share_the_next_one() -> None:
    recorder = Recorder()
    recorder.release.clear()
    runner = GroupCommit(recorder.run_many, name="t")
    first = asyncio.create_task(runner.submit(2))
    while not recorder.batches:  # until the first batch is running (and held)
        await asyncio.sleep(0)
    later = [asyncio.create_task(runner.submit(i)) for i in (4, 6)]
    await asyncio.sleep(0)
    recorder.release.set()
    assert await first == 4
    assert [await t for t in later] == [8, 12]
    assert recorder.batches == [[2], [4, 6]]


async def test_an_item_error_reaches_only_its_caller() -> None:
    runner = GroupCommit(Recorder().run_many, name="t")
    outcomes = await asyncio.gather(runner.submit(2), runner.submit(3), return_exceptions=True)
    assert outcomes[0] == 4
    assert isinstance(outcomes[1], ValueError)


async def test_a_failed_batch_is_redone_item_by_item() -> None:
    recorder = Recorder()
    runner = GroupCommit(recorder.run_many, run_one=recorder.run_one, name="t")
    outcomes = await asyncio.gather(
        runner.submit(2), runner.submit(13), runner.submit(4), return_exceptions=True
    )
    assert outcomes[0] == 4 and outcomes[2] == 8
    assert isinstance(outcomes[1], RuntimeError) and str(outcomes[1]) == "13 alone"
    assert recorder.singles == [2, 13, 4]


async def test_without_run_one_a_failed_batch_fails_every_caller() -> None:
    runner = GroupCommit(Recorder().run_many, name="t")
    outcomes = await asyncio.gather(runner.submit(2), runner.submit(13), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)


async def test_close_waits_for_the_running_batch() -> None:
    recorder = Recorder()
    recorder.release.clear()
    runner = GroupCommit(recorder.run_many, name="t")
    pending = asyncio.create_task(runner.submit(2))
    while not recorder.batches:
        await asyncio.sleep(0)
    closing = asyncio.create_task(runner.close())
    await asyncio.sleep(0)
    assert not closing.done()
    recorder.release.set()
    await closing
    assert pending.done() and pending.result() == 4


@pytest.mark.parametrize("size", [1, 5])
async def test_batches_never_exceed_max_batch(size: int) -> None:
    recorder = Recorder()
    runner = GroupCommit(recorder.run_many, name="t", max_batch=size)
    await asyncio.gather(*(runner.submit(2 * i) for i in range(12)))
    assert max(len(b) for b in recorder.batches) <= size
    assert sorted(i for b in recorder.batches for i in b) == [2 * i for i in range(12)]


async def test_a_cancelled_caller_does_not_take_its_item_out_of_the_batch() -> None:
    """The outbox hands an outcome over and may be cancelled meanwhile (shutdown): the
    outcome must still be written, and the other callers of the batch still answered."""
    recorder = Recorder()
    recorder.release.clear()
    runner = GroupCommit(recorder.run_many, name="t")
    first = asyncio.create_task(runner.submit(2))
    while not recorder.batches:  # the first batch is running (and held)
        await asyncio.sleep(0)
    leaving = asyncio.create_task(runner.submit(4))  # queued for the next batch
    staying = asyncio.create_task(runner.submit(6))
    await asyncio.sleep(0)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    recorder.release.set()
    assert (await first, await staying) == (4, 12)
    await runner.close()
    assert recorder.batches == [[2], [4, 6]]


async def test_a_cancelled_batch_cancels_its_callers() -> None:
    recorder = Recorder()
    recorder.release.clear()
    runner = GroupCommit(recorder.run_many, name="batch")
    waiting = asyncio.create_task(runner.submit(2))
    while not recorder.batches:
        await asyncio.sleep(0)
    batch = next(t for t in asyncio.all_tasks() if t.get_name() == "batch")
    batch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
