"""When to handle a sender's messages: after their burst of quick messages is over.

People write in bursts ("hi" / "we're 40 people" / "need it by March"). Each new message of a
sender pushes their turn back by ``window`` of quiet, but never past ``4 × window`` from the
first, so a chatty prospect still gets an answer. Messages arriving while a turn runs make
another turn follow it. One task per sender at a time, in this process.

Turns are released on a grid of ``window / 8`` (50 ms for the default 400 ms window): the
conversations whose bursts end within the same slot start their turns together, so the
processor's group commits (load, commit, deliver) take them in one transaction each instead
of one per conversation. Under load that is what keeps the database from becoming the
queue; it costs a turn at most one slot of waiting.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("leadbot.inbox")


@dataclass(slots=True)
class _Sender:
    deadline: float
    cap: float
    task: asyncio.Task[None] | None = None
    dirty: bool = False
    busy: bool = False  # handling a turn (not just waiting for the burst to end)


class BurstScheduler:
    """Runs ``handle(sender)`` once per burst of ``kick(sender)`` calls."""

    def __init__(self, handle: Callable[[str], Awaitable[None]], window: float) -> None:
        self.handle = handle
        self.window = window
        self.grid = window / 8
        self._senders: dict[str, _Sender] = {}
        self._closed = False

    def kick(self, *senders: str, wait: bool = True) -> None:
        """New messages of ``senders``: handle them once their burst is over (``wait=False``:
        as soon as possible, for recovery). Senders kicked together (one webhook body) read
        the clock once, so they land in the same release slot and start their turns together."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        window = self.window if wait else 0.0
        for sender in senders:
            state = self._senders.get(sender)
            if state is None:
                deadline = self._slot(now + window) if wait else now
                self._start(sender, _Sender(deadline=deadline, cap=now + 4 * window))
            else:
                deadline = min(max(state.deadline, now + window), max(state.cap, now))
                state.deadline = self._slot(deadline) if wait else deadline
                state.dirty = True

    def defer(self, sender: str, delay: float) -> None:
        """Handle ``sender`` in ``delay`` seconds, not sooner: recovery of rows that another
        live worker may still be collecting a burst of (taking them now would split that
        burst into two turns). A turn of theirs already scheduled here covers them."""
        if self._closed:
            return
        state = self._senders.get(sender)
        if state is not None:
            state.dirty = state.dirty or state.busy  # a running turn may have loaded too early
            return
        at = asyncio.get_running_loop().time() + max(0.0, delay)
        self._start(sender, _Sender(deadline=at, cap=at))

    def _start(self, sender: str, state: _Sender) -> None:
        self._senders[sender] = state
        loop = asyncio.get_running_loop()
        state.task = loop.create_task(self._run(sender, state), name=f"inbox:{sender}")

    def _slot(self, at: float) -> float:
        """The first release time on the grid at or after ``at``."""
        if self.grid <= 0:
            return at
        return math.ceil(at / self.grid) * self.grid

    async def _run(self, sender: str, state: _Sender) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                while (delay := state.deadline - loop.time()) > 0:
                    await asyncio.sleep(delay)  # the burst window: scheduling, not a race fix
                state.dirty = False
                state.busy = True
                await self.handle(sender)
                state.busy = False
                if not state.dirty:
                    break
                state.cap = loop.time() + 4 * self.window
        except Exception:
            log.exception("inbox: handling %s failed; the sweep retries it", sender)
        finally:
            if self._senders.get(sender) is state:
                del self._senders[sender]

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until every scheduled turn is done (tests, the sandbox, shutdown)."""
        async with asyncio.timeout(timeout):
            while self._senders:
                tasks = [s.task for s in self._senders.values() if s.task is not None]
                await asyncio.wait(tasks)
                # A task cancelled before it ever ran never reaches its own cleanup.
                for sender, state in list(self._senders.items()):
                    if state.task is None or state.task.done():
                        del self._senders[sender]

    async def close(self, timeout: float = 10.0) -> None:
        """Stop taking work: drop turns still waiting for their burst to end and let turns
        in progress finish. Their rows stay in the inbox; the next start recovers them."""
        self._closed = True
        for state in list(self._senders.values()):
            if state.task is not None and not state.busy:
                state.task.cancel()
        try:
            await self.settle(timeout)
        except TimeoutError:
            for state in list(self._senders.values()):
                if state.task is not None:
                    state.task.cancel()
        await asyncio.gather(
            *(s.task for s in list(self._senders.values()) if s.task), return_exceptions=True
        )

    def pending(self) -> set[str]:
        """Senders with a turn scheduled or running."""
        return set(self._senders)
