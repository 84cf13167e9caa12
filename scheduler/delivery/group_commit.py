"""Group commit for the scheduler: callers that arrive while a batch is written share the next.

The outbox records each send's outcome as soon as it is known, and marks each attempt just
before its request leaves; one transaction per send would cost a round trip each. A
:class:`Coalescer` runs one batch at a time: everything submitted while a batch is being
written goes into the next one, so at low load a batch is one caller and nothing waits, and
under load a batch grows by itself. (``bot.batching.GroupRunner`` is the same idea for the
bot layer, which the scheduler may not import.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """Runs ``run_many(items)`` over the items submitted meanwhile, one batch at a time.

    ``run_many`` returns one result per item, in order. When it raises, every caller of that
    batch gets the error. A caller cancelled while waiting does not cancel its batch: what
    was handed over is written anyway (an outcome must not be lost with its caller).
    """

    def __init__(
        self,
        run_many: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        name: str,
        max_batch: int = 500,
    ) -> None:
        self.run_many = run_many
        self.name = name
        self.max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Queue ``item`` for the next batch; return its result once that batch is done."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)  # a cancelled caller's error is not "unretrieved"
        self._pending.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name=self.name)
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._pending:
            await asyncio.sleep(0)  # callers ready in this loop turn join this batch
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            try:
                results = await self.run_many([item for item, _ in batch])
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def close(self) -> None:
        """Wait for the batch being written and those queued behind it."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
