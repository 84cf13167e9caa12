"""What a turn needs from other components: rep notifications and the follow-up cadence.

``bot.notify.notify_reps`` and ``scheduler.touches.start_sequence`` / ``cancel_pending`` are
written alongside this module; they are looked up when first used, so the inbox keeps working
(with a warning) in a tree where one of them is missing, and tests pass stand-ins.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from bot.settings import Settings
from scheduler.models import Lead

log = logging.getLogger("leadbot.inbox")


class NotifyReps(Protocol):
    """``bot.notify.notify_reps``: enqueue the rep notifications; return the outbox ids."""

    def __call__(
        self,
        session: AsyncSession,
        *,
        lead: Lead,
        kind: str,
        summary: str,
        details: dict[str, Any],
        now: datetime,
    ) -> Awaitable[Sequence[int]]: ...


StartSequence = Callable[..., Awaitable[Any]]  # (session, lead_id, sequence, *, now)
CancelPending = Callable[..., Awaitable[Any]]  # (session, lead_id, *, reason, now)


@dataclass(frozen=True, slots=True)
class Hooks:
    """The functions a turn calls, in the turn's own transaction."""

    notify_reps: NotifyReps
    start_sequence: StartSequence
    cancel_pending: CancelPending


def _lookup(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        log.warning("%s.%s is not available (%s): skipped", module, name, exc)
        return None


async def _notify_missing(session: AsyncSession, **_: Any) -> Sequence[int]:
    return ()


async def _noop(*_: Any, **__: Any) -> None:
    return None


def default_hooks(settings: Settings) -> Hooks:
    """The real implementations (``bot.notify``, ``scheduler.touches``) configured from
    ``settings``, or logged no-ops where a module is missing."""
    notify = _lookup("bot.notify", "notify_reps")
    start = _lookup("scheduler.touches", "start_sequence")
    cancel = _lookup("scheduler.touches", "cancel_pending") or _noop
    options_type = _lookup("bot.notify", "RepOptions")
    options = options_type.from_settings(settings) if options_type is not None else None
    cadence: list[Any] = []  # loaded on first use: a bad file fails that turn, loudly

    async def notify_reps(session: AsyncSession, **kwargs: Any) -> Sequence[int]:
        if notify is None:
            return ()
        ids: Sequence[int] = await notify(session, options=options, **kwargs)
        return ids

    async def start_sequence(
        session: AsyncSession, lead_id: int, sequence: str, *, now: Any
    ) -> Any:
        if start is None:
            return None
        if not cadence:
            from scheduler.cadence import load_cadence

            cadence.append(
                load_cadence(settings.cadence_file, default_timezone=settings.default_timezone)
            )
        return await start(session, lead_id, sequence, cadence=cadence[0], now=now)

    return Hooks(notify_reps=notify_reps, start_sequence=start_sequence, cancel_pending=cancel)
