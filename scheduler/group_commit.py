"""Group commit: callers that arrive while a batch is being written share the next one.

Each caller still gets its own answer, and only once its batch is done, but a burst of
callers costs a few round trips to the database instead of one each. At low load a batch is
one caller and nothing waits; under load batches grow by themselves, which is what keeps
SQLAlchemy's per-statement cost from capping throughput. Used by the outbox (claims, starts,
outcomes) and by the WhatsApp webhook and conversation processor in ``bot/``, which may import
the scheduler (not the reverse): that is why it lives here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

RunMany = Callable[[list[T]], Awaitable[Sequence[R | BaseException]]]
RunOne = Callable[[T], Awaitable[R]]


class GroupCommit(Generic[T, R]):
    """Runs ``run_many(items)`` over the items submitted meanwhile, one batch at a time.

    ``run_many`` returns one result per item, in order; a result that is an exception is
    raised to that item's caller only. If ``run_many`` raises, the batch is run again item
    by item with ``run_one`` (one bad item must not fail the others: it was all one
    transaction), or, without ``run_one``, every caller of the batch gets the error.

    A caller cancelled while waiting does not take its item out of the batch, nor cancel the
    batch: what was handed over is written anyway (an outcome must not be lost with its
    caller).
    """

    def __init__(
        self,
        run_many: RunMany[T, R],
        *,
        name: str,
        run_one: RunOne[T, R] | None = None,
        max_batch: int = 256,
    ) -> None:
        self.run_many = run_many
        self.run_one = run_one
        self.name = name
        self.max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Queue ``item`` for the next batch; return its result once the batch is done."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name=self.name)
        return await future  # cancelling the caller cancels this future, not the batch

    async def _drain(self) -> None:
        while self._pending:
            # One turn of the event loop first: callers that are ready to submit (requests
            # already read, turns already planned) join this batch instead of the next.
            await asyncio.sleep(0)
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            items = [item for item, _ in batch]
            try:
                results = await self.run_many(items)
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                raise
            except Exception as exc:
                if self.run_one is None or len(items) == 1:
                    results = [exc] * len(items)
                else:
                    results = [await self._one(item) for item in items]
            except BaseException as exc:  # KeyboardInterrupt, SystemExit: callers hear it too
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                raise
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():  # its caller was cancelled meanwhile
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def _one(self, item: T) -> R | BaseException:
        assert self.run_one is not None
        try:
            return await self.run_one(item)
        except Exception as exc:
            return exc

    async def close(self) -> None:
        """Wait for the batch being run and those queued behind it."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
