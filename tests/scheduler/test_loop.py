"""The scheduler loop runs interval jobs in the service's event loop and stops cleanly."""

from __future__ import annotations

import asyncio
from datetime import datetime

from scheduler.loop import PeriodicJob, SchedulerLoop


async def test_jobs_run_with_utc_now_and_stop_waits_for_them() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    seen: list[datetime] = []
    finished: list[bool] = []

    async def sweep(now: datetime) -> None:
        seen.append(now)
        started.set()
        await release.wait()
        finished.append(True)

    loop = SchedulerLoop([PeriodicJob("sweep", 3600, sweep)])
    loop.start()
    await asyncio.wait_for(started.wait(), timeout=10)
    assert seen[0].tzinfo is not None and seen[0].utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    stopping = asyncio.ensure_future(loop.stop())
    await asyncio.sleep(0)
    assert not stopping.done()  # the sweep in progress is not cancelled...
    release.set()
    await asyncio.wait_for(stopping, timeout=10)
    assert finished == [True]  # ...it finishes


async def test_a_failing_job_does_not_stop_the_loop() -> None:
    calls = asyncio.Queue[int]()

    async def broken(now: datetime) -> None:
        calls.put_nowait(1)
        raise RuntimeError("boom")

    loop = SchedulerLoop([PeriodicJob("broken", 0.05, broken)])
    loop.start()
    for _ in range(2):
        await asyncio.wait_for(calls.get(), timeout=10)
    await loop.stop()
