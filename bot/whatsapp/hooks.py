"""What a turn needs from other components: rep notifications and the follow-up cadence.

A seam, so that tests of the inbox can pass stand-ins for ``bot.notify.notify_reps`` and
``scheduler.followups.touches.start_sequence`` / ``cancel_pending``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bot.notify import RepOptions, notify_reps
from bot.settings import Settings
from scheduler.followups.cadence import Cadence
from scheduler.followups.touches import cancel_pending, start_sequence
from scheduler.store import Session
from scheduler.store.models import Lead


class NotifyReps(Protocol):
    """``bot.notify.notify_reps``: enqueue the rep notifications; return the outbox ids."""

    def __call__(
        self,
        session: Session,
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


def default_hooks(settings: Settings, cadence: Cadence) -> Hooks:
    """The real implementations: rep notifications configured from ``settings`` (the rep
    template) and follow-ups on the service's loaded ``cadence``."""
    options = RepOptions.from_settings(settings)

    async def notify(session: Session, **kwargs: Any) -> Sequence[int]:
        return await notify_reps(session, options=options, **kwargs)

    async def start(session: Session, lead_id: int, sequence: str, *, now: datetime) -> int:
        return await start_sequence(session, lead_id, sequence, cadence=cadence, now=now)

    return Hooks(notify_reps=notify, start_sequence=start, cancel_pending=cancel_pending)
