"""The durable outbox: every message we send is a row first, and is sent at most once.

An intent gets a deterministic key (``lead:42:touch:day3``, ``wa:wamid.IN1:reply``), so
asking twice to send the same thing stores one row. Delivery claims the row
(``pending → sending``) and commits *before* calling the channel, then records the outcome:

- ``sent`` with the provider's id;
- back to ``pending`` with a backoff when the channel says the message surely did not go out
  and retrying may help (connection refused, 429, 5xx with an error body), ``failed`` once
  attempts run out or when the failure is permanent;
- ``uncertain`` when nobody knows (a timeout after the request left, an unexpected error, a
  crash while ``sending``). Uncertain rows are shown to a human and never resent by code.

Channels (WhatsApp, email, sandbox) implement :class:`Channel`; ``bot`` wires them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from scheduler.db import insert_or_ignore
from scheduler.models import Lead, Message, OutboxItem, OutboxState

log = logging.getLogger("leadbot.outbox")

DEFAULT_BACKOFF = (timedelta(seconds=5), timedelta(seconds=30), timedelta(minutes=2),
                   timedelta(minutes=10), timedelta(minutes=30))  # fmt: skip


class DeliveryError(Exception):
    """A channel could not deliver. ``code`` is the provider's error code when it gave one."""

    def __init__(self, message: str, *, code: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class NotSent(DeliveryError):
    """The provider surely did not accept the message. ``is_transient`` says whether trying
    again later may succeed (throttling, 5xx, connection refused). ``attempted=False`` means
    the channel held the message back itself (a daily cap, a rate limit) without contacting
    the provider: the row is deferred by ``retry_after`` and the try does not count."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        is_transient: bool = True,
        retry_after: float | None = None,
        attempted: bool = True,
    ) -> None:
        super().__init__(message, code=code, retry_after=retry_after)
        self.is_transient = is_transient
        self.attempted = attempted


class MaybeSent(DeliveryError):
    """The outcome is unknown (e.g. a timeout after the request was written)."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a channel returns for an accepted message."""

    external_id: str | None


class Channel(Protocol):
    """A way to reach a person. ``payload`` is the outbox row's payload (channel-specific,
    always with a human-readable ``text``)."""

    name: str

    async def send(self, recipient: str, payload: Mapping[str, Any]) -> Receipt:
        """Send one message; raise :class:`NotSent` or :class:`MaybeSent` when not accepted."""
        ...


async def enqueue(
    session: AsyncSession,
    *,
    key: str,
    channel: str,
    recipient: str,
    payload: Mapping[str, Any],
    now: datetime,
    lead_id: int | None = None,
    not_before: datetime | None = None,
) -> int | None:
    """Store an intent to send, in the caller's transaction. Returns the new row's id, or
    None when an intent with this key already exists (it is never stored twice)."""
    statement = (
        insert_or_ignore(session, OutboxItem, ["key"])
        .values(
            key=key,
            channel=channel,
            recipient=recipient,
            payload=dict(payload),
            lead_id=lead_id,
            state=OutboxState.PENDING.value,
            attempts=0,
            next_attempt_at=not_before,
            created_at=now,
            updated_at=now,
        )
        .returning(OutboxItem.id)
    )
    return await session.scalar(statement)


def _due(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """Conditions of a row that may be sent now."""
    return (
        OutboxItem.state == OutboxState.PENDING.value,
        or_(OutboxItem.next_attempt_at.is_(None), OutboxItem.next_attempt_at <= now),
    )


@dataclass(frozen=True, slots=True)
class _Claim:
    item_id: int
    channel: str
    recipient: str
    payload: dict[str, Any]
    attempts: int
    lead_id: int | None


class Dispatcher:
    """Delivers outbox rows through their channels, following the module's rules."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        channels: Mapping[str, Channel],
        *,
        backoff: tuple[timedelta, ...] = DEFAULT_BACKOFF,
    ) -> None:
        self.sessions = sessions
        self.channels = dict(channels)
        self.backoff = backoff

    async def deliver(self, item_id: int, now: datetime) -> str:
        """Try to send one row now; return its state afterwards. A row that is not due or
        not pending (already sent, being sent elsewhere, uncertain) is left alone."""
        async with self.sessions.begin() as session:
            row = (
                await session.execute(
                    update(OutboxItem)
                    .where(
                        OutboxItem.id == item_id,
                        OutboxItem.state == OutboxState.PENDING.value,
                        or_(
                            OutboxItem.next_attempt_at.is_(None), OutboxItem.next_attempt_at <= now
                        ),
                    )
                    .values(
                        state=OutboxState.SENDING.value,
                        attempts=OutboxItem.attempts + 1,
                        updated_at=now,
                    )
                    .returning(
                        OutboxItem.channel,
                        OutboxItem.recipient,
                        OutboxItem.payload,
                        OutboxItem.attempts,
                        OutboxItem.lead_id,
                    )
                )
            ).one_or_none()
            if row is None:
                state = await session.scalar(
                    select(OutboxItem.state).where(OutboxItem.id == item_id)
                )
                return state or "missing"
        claim = _Claim(item_id, row.channel, row.recipient, row.payload, row.attempts, row.lead_id)
        channel = self.channels.get(claim.channel)
        try:
            if channel is None:
                raise NotSent(f"no channel {claim.channel!r} is configured", is_transient=False)
            receipt = await channel.send(claim.recipient, claim.payload)
        except NotSent as exc:
            return await self._not_sent(item_id, exc, claim.attempts, now)
        except MaybeSent as exc:
            return await self._finish(item_id, OutboxState.UNCERTAIN, now, error=str(exc))
        except Exception as exc:  # we cannot tell whether it went out: never resend
            log.exception("outbox %s: unexpected error from channel %s", item_id, claim.channel)
            return await self._finish(item_id, OutboxState.UNCERTAIN, now, error=repr(exc))
        await self._sent(claim, receipt, now)
        return OutboxState.SENT.value

    async def deliver_due(self, now: datetime, limit: int = 100) -> int:
        """Deliver pending rows that are due (retries, deferred sends); return how many
        were tried. Rows are claimed one by one, so concurrent callers never share one."""
        async with self.sessions() as session:
            ids = list(
                await session.scalars(
                    select(OutboxItem.id)
                    .where(
                        OutboxItem.state == OutboxState.PENDING.value,
                        or_(
                            OutboxItem.next_attempt_at.is_(None), OutboxItem.next_attempt_at <= now
                        ),
                    )
                    .order_by(OutboxItem.id)
                    .limit(limit)
                )
            )
        for item_id in ids:
            await self.deliver(item_id, now)
        return len(ids)

    async def reap(self, now: datetime, lease: timedelta = timedelta(minutes=5)) -> int:
        """Rows stuck in ``sending`` past ``lease`` (the sender crashed mid-call) become
        ``uncertain``: they may have gone out, so a human decides."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(OutboxItem)
                .where(
                    OutboxItem.state == OutboxState.SENDING.value,
                    OutboxItem.updated_at < now - lease,
                )
                .values(
                    state=OutboxState.UNCERTAIN.value,
                    error="interrupted while sending",
                    updated_at=now,
                )
            )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def _not_sent(self, item_id: int, exc: NotSent, attempts: int, now: datetime) -> str:
        held_back = exc.is_transient and not exc.attempted
        if held_back:
            attempts -= 1
        elif not exc.is_transient or attempts >= len(self.backoff) + 1:
            return await self._finish(item_id, OutboxState.FAILED, now, error=str(exc))
        delay = self.backoff[attempts - 1] if not held_back else timedelta(0)
        if exc.retry_after is not None:
            delay = max(delay, timedelta(seconds=exc.retry_after))
        async with self.sessions.begin() as session:
            await session.execute(
                update(OutboxItem)
                .where(OutboxItem.id == item_id, OutboxItem.state == OutboxState.SENDING.value)
                .values(
                    state=OutboxState.PENDING.value,
                    attempts=attempts,
                    next_attempt_at=now + delay,
                    error=str(exc),
                    updated_at=now,
                )
            )
        return OutboxState.PENDING.value

    async def _finish(self, item_id: int, state: OutboxState, now: datetime, error: str) -> str:
        log.warning("outbox %s: %s (%s)", item_id, state.value, error)
        async with self.sessions.begin() as session:
            await session.execute(
                update(OutboxItem)
                .where(OutboxItem.id == item_id)
                .values(state=state.value, error=error[:2000], updated_at=now)
            )
        return state.value

    async def _sent(self, claim: _Claim, receipt: Receipt, now: datetime) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                update(OutboxItem)
                .where(OutboxItem.id == claim.item_id)
                .values(
                    state=OutboxState.SENT.value,
                    external_id=receipt.external_id,
                    error=None,
                    updated_at=now,
                )
            )
            if claim.lead_id is not None:
                session.add(
                    Message(
                        lead_id=claim.lead_id,
                        channel=claim.channel,
                        direction="out",
                        external_id=receipt.external_id,
                        body=str(claim.payload.get("text", "")),
                        payload=claim.payload,
                        created_at=now,
                    )
                )
                await session.execute(
                    update(Lead).where(Lead.id == claim.lead_id).values(last_outbound_at=now)
                )
