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

Channels (WhatsApp, email, sandbox) implement :class:`scheduler.channels.Channel` (re-exported
here); ``bot`` wires them. A channel may also implement ``BatchChannel`` to check and send a
whole batch at once.

:meth:`Dispatcher.deliver_many` is the one delivery path: it claims a batch in one statement
and commits, sends (concurrently, bounded per channel, no session held), then records every
outcome in one transaction. ``deliver`` and ``deliver_due`` are batches of their own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from scheduler import parked_statuses
from scheduler.channels import (
    BatchChannel,
    Channel,
    DeliveryError,
    MaybeSent,
    NotSent,
    Outcome,
    Receipt,
)
from scheduler.db import insert_or_ignore
from scheduler.models import Lead, Message, OutboxItem, OutboxState

log = logging.getLogger("leadbot.outbox")

DEFAULT_BACKOFF = (timedelta(seconds=5), timedelta(seconds=30), timedelta(minutes=2),
                   timedelta(minutes=10), timedelta(minutes=30))  # fmt: skip


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
    row = {
        "key": key,
        "channel": channel,
        "recipient": recipient,
        "payload": dict(payload),
        "lead_id": lead_id,
        "state": OutboxState.PENDING.value,
        "attempts": 0,
        "next_attempt_at": not_before,
        "created_at": now,
        "updated_at": now,
    }
    statement = insert_or_ignore(session, _TABLE, ["key"], returning=(_TABLE.c.id,))
    item_id: int | None = await session.scalar(statement, row)
    return item_id


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


_CHUNK = 500  # ids per IN (…) list: well under every backend's bound-parameter limit
_TABLE = cast(Table, OutboxItem.__table__)
_LEADS = cast(Table, Lead.__table__)


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
        return (await self.deliver_many([item_id], now))[item_id]

    async def deliver_due(self, now: datetime, limit: int = 100, *, concurrency: int = 8) -> int:
        """Deliver pending rows that are due (retries, deferred sends); return how many
        were tried. The claim is one conditional UPDATE, so concurrent callers never share
        a row."""
        async with self.sessions() as session:
            ids = list(
                await session.scalars(
                    select(OutboxItem.id).where(*_due(now)).order_by(OutboxItem.id).limit(limit)
                )
            )
        if ids:
            await self.deliver_many(ids, now, concurrency=concurrency)
        return len(ids)

    async def deliver_many(
        self, ids: Sequence[int], now: datetime, *, concurrency: int = 8
    ) -> dict[int, str]:
        """Send every given row that is pending and due; return each id's state afterwards.

        One statement claims them all (``pending → sending``, committed before any send);
        rows not claimed (not due, sent, being sent elsewhere, uncertain) are left alone.
        The claimed rows are sent at most ``concurrency`` at a time per channel, and all
        outcomes are recorded in one transaction.
        """
        unique = list(dict.fromkeys(ids))
        claims: list[_Claim] = []
        for first in range(0, len(unique), _CHUNK):
            claims += await self._claim(unique[first : first + _CHUNK], now)
        states: dict[int, str] = {}
        claimed = {c.item_id for c in claims}
        others = [i for i in unique if i not in claimed]
        if others:
            async with self.sessions() as session:
                for first in range(0, len(others), _CHUNK):
                    rows = await session.execute(
                        select(OutboxItem.id, OutboxItem.state).where(
                            OutboxItem.id.in_(others[first : first + _CHUNK])
                        )
                    )
                    states.update({item_id: state for item_id, state in rows})
            states.update({i: "missing" for i in others if i not in states})
        if claims:
            outcomes = await self._send(claims, concurrency)
            states.update(await self._record(claims, outcomes, now))
        return states

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

    # -- steps ---------------------------------------------------------------------------

    async def _claim(self, ids: list[int], now: datetime) -> list[_Claim]:
        async with self.sessions.begin() as session:
            rows = await session.execute(
                update(OutboxItem)
                .where(OutboxItem.id.in_(ids), *_due(now))
                .values(
                    state=OutboxState.SENDING.value,
                    attempts=OutboxItem.attempts + 1,
                    updated_at=now,
                )
                .returning(
                    OutboxItem.id,
                    OutboxItem.channel,
                    OutboxItem.recipient,
                    OutboxItem.payload,
                    OutboxItem.attempts,
                    OutboxItem.lead_id,
                )
                .execution_options(synchronize_session=False)
            )
            claims = [_Claim(r.id, r.channel, r.recipient, r.payload, r.attempts, r.lead_id)
                      for r in rows]  # fmt: skip
        claims.sort(key=lambda c: c.item_id)
        return claims

    async def _send(self, claims: list[_Claim], concurrency: int) -> list[Outcome]:
        """Every claim's outcome, in order; no session is held while sending."""
        groups: dict[str, list[int]] = {}
        for index, claim in enumerate(claims):
            groups.setdefault(claim.channel, []).append(index)
        outcomes: list[Outcome] = [RuntimeError("not sent")] * len(claims)

        async def one_channel(name: str, indexes: list[int]) -> None:
            channel = self.channels.get(name)
            if channel is None:
                missing = NotSent(f"no channel {name!r} is configured", is_transient=False)
                for i in indexes:
                    outcomes[i] = missing
                return
            items = [(claims[i].recipient, claims[i].payload) for i in indexes]
            results = await _send_through(channel, items, concurrency)
            for i, result in zip(indexes, results, strict=True):
                outcomes[i] = result

        await asyncio.gather(*(one_channel(name, idx) for name, idx in groups.items()))
        return outcomes

    async def _record(
        self, claims: list[_Claim], outcomes: list[Outcome], now: datetime
    ) -> dict[int, str]:
        """Store every outcome in one transaction (one executemany per kind of change)."""
        states: dict[int, str] = {}
        sent: list[dict[str, Any]] = []
        final: list[dict[str, Any]] = []
        retry: list[dict[str, Any]] = []
        messages: list[dict[str, Any]] = []
        leads: list[dict[str, Any]] = []
        for claim, outcome in zip(claims, outcomes, strict=True):
            if isinstance(outcome, Receipt):
                states[claim.item_id] = OutboxState.SENT.value
                sent.append({"b_id": claim.item_id, "b_external_id": outcome.external_id})
                if claim.lead_id is not None:
                    messages.append(_message_row(claim, outcome, now))
                    leads.append({"b_id": claim.lead_id})
                continue
            change = self._failure(claim, outcome, now)
            states[claim.item_id] = change["b_state"]
            (retry if change["b_state"] == OutboxState.PENDING.value else final).append(change)
        async with self.sessions.begin() as session:
            if sent:
                await session.execute(
                    update(_TABLE)
                    .where(_TABLE.c.id == bindparam("b_id"))
                    .values(
                        state=OutboxState.SENT.value,
                        external_id=bindparam("b_external_id"),
                        error=None,
                        updated_at=now,
                    ),
                    sent,
                )
                # Statuses Meta reported before this wamid was recorded (item 8).
                await parked_statuses.apply_parked(session, [r["b_id"] for r in sent])
            if final:
                await session.execute(
                    update(_TABLE)
                    .where(_TABLE.c.id == bindparam("b_id"))
                    .values(
                        state=bindparam("b_state"), error=bindparam("b_error"), updated_at=now
                    ),
                    final,
                )
            if retry:
                await session.execute(
                    update(_TABLE)
                    .where(
                        _TABLE.c.id == bindparam("b_id"),
                        _TABLE.c.state == OutboxState.SENDING.value,
                    )
                    .values(
                        state=OutboxState.PENDING.value,
                        attempts=bindparam("b_attempts"),
                        next_attempt_at=bindparam("b_next"),
                        error=bindparam("b_error"),
                        updated_at=now,
                    ),
                    [{k: v for k, v in r.items() if k != "b_state"} for r in retry],
                )
            if messages:
                await session.execute(insert(Message), messages)
            if leads:
                await session.execute(
                    update(_LEADS)
                    .where(_LEADS.c.id == bindparam("b_id"))
                    .values(last_outbound_at=now),
                    leads,
                )
        return states

    def _failure(self, claim: _Claim, exc: BaseException, now: datetime) -> dict[str, Any]:
        """The row change for a send that raised ``exc`` (keys ``b_*``, ``b_state`` first)."""
        item_id, attempts = claim.item_id, claim.attempts
        if isinstance(exc, NotSent):
            held_back = exc.is_transient and not exc.attempted
            if held_back:
                attempts -= 1  # the channel never contacted the provider: the try is free
            elif not exc.is_transient or attempts >= len(self.backoff) + 1:
                return _final(item_id, OutboxState.FAILED, str(exc))
            delay = self.backoff[attempts - 1] if not held_back else timedelta(0)
            if exc.retry_after is not None:
                delay = max(delay, timedelta(seconds=exc.retry_after))
            return {
                "b_state": OutboxState.PENDING.value,
                "b_id": item_id,
                "b_attempts": attempts,
                "b_next": now + delay,
                "b_error": str(exc),
            }
        if isinstance(exc, MaybeSent):
            return _final(item_id, OutboxState.UNCERTAIN, str(exc))
        # Anything else: we cannot tell whether it went out, so it is never resent.
        log.error("outbox %s: unexpected error from channel %s", item_id, claim.channel,
                  exc_info=exc)  # fmt: skip
        return _final(item_id, OutboxState.UNCERTAIN, repr(exc))


def _final(item_id: int, state: OutboxState, error: str) -> dict[str, Any]:
    log.warning("outbox %s: %s (%s)", item_id, state.value, error)
    return {"b_state": state.value, "b_id": item_id, "b_error": error[:2000]}


def _message_row(claim: _Claim, receipt: Receipt, now: datetime) -> dict[str, Any]:
    return {
        "lead_id": claim.lead_id,
        "channel": claim.channel,
        "direction": "out",
        "external_id": receipt.external_id,
        "body": str(claim.payload.get("text", "")),
        "payload": claim.payload,
        "created_at": now,
    }


async def _send_through(
    channel: Channel, items: list[tuple[str, dict[str, Any]]], concurrency: int
) -> list[Outcome]:
    """Each item's outcome through ``channel``: its batch method when it has one."""
    send_batch = getattr(channel, "send_batch", None)
    if send_batch is not None:
        try:
            results: list[Outcome] = await send_batch(items, concurrency=concurrency)
        except Exception as exc:  # which of them went out is unknown: none is resent
            return [exc] * len(items)
        return results
    limit = asyncio.Semaphore(max(1, concurrency))

    async def one(recipient: str, payload: dict[str, Any]) -> Outcome:
        async with limit:
            try:
                return await channel.send(recipient, payload)
            except Exception as exc:
                return exc

    return list(await asyncio.gather(*(one(r, p) for r, p in items)))


__all__ = [
    "DEFAULT_BACKOFF",
    "BatchChannel",
    "Channel",
    "DeliveryError",
    "Dispatcher",
    "MaybeSent",
    "NotSent",
    "Outcome",
    "Receipt",
    "enqueue",
]
