"""The suppression list: addresses we must never message again, checked before every send.

Keyed on the normalized address (trimmed, lower-cased), so ``Jane@Acme.com`` and
``jane@acme.com`` are one entry. Adding is idempotent: the first reason recorded wins (an
address that unsubscribed and later bounces stays "unsubscribe").
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.db import insert_or_ignore
from scheduler.models import Suppression


class SuppressionReason(StrEnum):
    """Why an address is suppressed."""

    UNSUBSCRIBE = "unsubscribe"
    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    REPLY_OPTOUT = "reply_optout"


def normalize_address(address: str) -> str:
    """The key an address is suppressed under."""
    return address.strip().lower()


async def find_suppression(session: AsyncSession, address: str) -> Suppression | None:
    """The suppression entry of ``address``, or None when we may write to it."""
    return await session.scalar(
        select(Suppression).where(Suppression.address == normalize_address(address))
    )


async def suppressed_among(session: AsyncSession, addresses: Iterable[str]) -> set[str]:
    """The normalized forms of ``addresses`` that are on the list."""
    return set(await suppression_reasons(session, addresses))


async def suppression_reasons(session: AsyncSession, addresses: Iterable[str]) -> dict[str, str]:
    """Each of ``addresses`` that is on the list (normalized) with its reason; one query per
    500 addresses.

    Every send-time check goes through here, so that how an entry matches (today: the
    normalized address) is decided in this module only."""
    wanted = sorted({normalize_address(a) for a in addresses if a})
    found: dict[str, str] = {}
    for first in range(0, len(wanted), _CHUNK):
        chunk = wanted[first : first + _CHUNK]
        rows = await session.execute(
            select(Suppression.address, Suppression.reason).where(Suppression.address.in_(chunk))
        )
        found.update({address: reason for address, reason in rows})
    return found


_CHUNK = 500  # addresses per IN (…) list


async def suppress(
    session: AsyncSession,
    address: str,
    *,
    reason: SuppressionReason | str,
    detail: str | None,
    now: datetime,
) -> bool:
    """Add ``address`` to the list in the caller's transaction; True when it was new."""
    statement = (
        insert_or_ignore(session, Suppression, ["address"])
        .values(
            address=normalize_address(address)[:320],
            reason=str(reason),
            detail=detail[:2000] if detail else None,
            created_at=now,
        )
        .returning(Suppression.id)
    )
    return await session.scalar(statement) is not None
