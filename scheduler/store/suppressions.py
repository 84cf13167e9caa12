"""The suppression list: addresses we must never message again, checked before every send.

Keyed on the normalized address (trimmed, lower-cased), so ``Jane@Acme.com`` and
``jane@acme.com`` are one entry. Adding is idempotent: the first reason recorded wins (an
address that unsubscribed and later bounces stays "unsubscribe").

An erased person (``scheduler.store.erasure``) stays suppressed without their address being kept:
their entry holds a keyed hash of it (:func:`address_hash`, HMAC-SHA256 with the service's
secret key) instead. Every lookup matches both forms: :func:`lookup_forms` gives what an
address may be stored as, and the key comes with the session (:func:`use_hash_key` on the
session factory, done once by the app from ``LEADBOT_SECRET_KEY``). Lookups in other modules
must go through :func:`lookup_forms` (or :func:`find_suppression`) to see erased entries.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scheduler.store.engine import insert_or_ignore
from scheduler.store.models import Suppression


class SuppressionReason(StrEnum):
    """Why an address is suppressed."""

    UNSUBSCRIBE = "unsubscribe"
    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    REPLY_OPTOUT = "reply_optout"


def normalize_address(address: str) -> str:
    """The key an address is suppressed under."""
    return address.strip().lower()


HASH_PREFIX = "hmac-sha256:"
# Where a session carries the key of hashed entries (``Session.info``).
HASH_KEY_INFO = "leadbot.suppression_hash_key"


def address_hash(address: str, key: bytes) -> str:
    """The keyed hash an erased person's address is suppressed under (76 characters)."""
    digest = hmac.new(key, normalize_address(address).encode(), hashlib.sha256).hexdigest()
    return HASH_PREFIX + digest


def use_hash_key(sessions: async_sessionmaker[AsyncSession], key: bytes) -> None:
    """Make every session of ``sessions`` match hashed entries made with ``key``."""
    info = dict(sessions.kw.get("info") or {})
    info[HASH_KEY_INFO] = key
    sessions.configure(info=info)


def lookup_forms(session: AsyncSession, addresses: Iterable[str]) -> dict[str, str]:
    """Every form the ``addresses`` may be suppressed under (normalized, and keyed hash when
    the session has the key), each mapped to the address it stands for."""
    key = session.info.get(HASH_KEY_INFO)
    forms: dict[str, str] = {}
    for address in addresses:
        forms[normalize_address(address)] = address
        if key:
            forms[address_hash(address, key)] = address
    return forms


async def suppressed_among(session: AsyncSession, addresses: Iterable[str]) -> set[str]:
    """The normalized forms of ``addresses`` that are on the list (plain or hashed)."""
    return set(await suppression_reasons(session, addresses))


async def suppression_reasons(session: AsyncSession, addresses: Iterable[str]) -> dict[str, str]:
    """Each of ``addresses`` that is on the list (plain or hashed), normalized, with its
    reason; one query per 500 addresses. The outbox's send-time check and the email channel
    look addresses up through here."""
    wanted = sorted({normalize_address(a) for a in addresses if a})
    found: dict[str, str] = {}
    for first in range(0, len(wanted), _CHUNK):
        forms = lookup_forms(session, wanted[first : first + _CHUNK])
        rows = await session.execute(
            select(Suppression.address, Suppression.reason)
            .where(Suppression.address.in_(list(forms)))
            .order_by(Suppression.id)
        )
        for stored, reason in rows:  # the first entry's reason wins, as when suppressing
            found.setdefault(forms[stored], reason)
    return found


_CHUNK = 500  # addresses per IN (…) list
_STORED = select(Suppression.address).where(
    Suppression.address.in_(bindparam("addresses", expanding=True))
)


async def stored_among(session: AsyncSession, forms: Iterable[str]) -> list[str]:
    """Those of ``forms`` (as :func:`lookup_forms` gives them) that are on the list."""
    return list(await session.scalars(_STORED, {"addresses": list(forms)}))


async def find_suppression(session: AsyncSession, address: str) -> Suppression | None:
    """The suppression entry of ``address`` (plain or hashed), or None when we may write
    to it."""
    return await session.scalar(
        select(Suppression)
        .where(Suppression.address.in_(list(lookup_forms(session, [address]))))
        .order_by(Suppression.id)
        .limit(1)
    )


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
