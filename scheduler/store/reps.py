"""Sales reps and lead ownership: round-robin assignment over the active reps.

The next owner is the active rep assigned longest ago (never assigned first, then by id),
and assigning stamps ``last_assigned_at`` strictly after every earlier stamp. Concurrent
assignments stay fair and safe: the lead row is locked first (one owner per lead, however
many callers race), and picking a rep is serialized: a transaction-scoped advisory lock on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite. (``FOR UPDATE SKIP LOCKED`` on the rep rows is
not enough: once every rep is locked, waiters queue on the first rep of their stale
snapshot and pile onto it.) Assignment happens once per lead, so the lock is cheap.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.errors import InvalidLeadError, NotFoundError
from scheduler.store.models import Lead, Rep

_TICK = timedelta(microseconds=1)
# Advisory lock id of rep assignment (any constant unique within the database).
_ASSIGN_LOCK = 0x1EAD_0001


async def add_rep(
    session: AsyncSession,
    *,
    name: str,
    email: str | None,
    whatsapp: str | None,
    now: datetime,
    timezone: str | None = None,
) -> Rep:
    """Add an active rep (contacts already normalized, ``timezone`` an IANA name or None for
    the default); raise if the email is taken or the time zone is unknown."""
    if not name.strip():
        raise InvalidLeadError("a rep needs a name")
    if email and await session.scalar(select(Rep.id).where(Rep.email == email)) is not None:
        raise InvalidLeadError(f"a rep with email {email} exists already")
    rep = Rep(
        name=name.strip(),
        email=email,
        whatsapp=whatsapp,
        active=True,
        created_at=now,
        timezone=check_timezone(timezone) if timezone else None,
    )
    session.add(rep)
    await session.flush()
    return rep


async def list_reps(session: AsyncSession, *, active_only: bool = False) -> list[Rep]:
    """Every rep (or only the active ones), in id order."""
    query = select(Rep).order_by(Rep.id)
    if active_only:
        query = query.where(Rep.active.is_(True))
    return list((await session.scalars(query)).all())


def check_timezone(name: str) -> str:
    """``name`` if it is an IANA time zone this system knows; else a clear error."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidLeadError(
            f"{name!r} is not a time zone; use an IANA name such as UTC, America/New_York, "
            "Europe/Berlin"
        ) from None
    return name


async def set_timezone(session: AsyncSession, rep_id: int, timezone: str | None) -> Rep:
    """Set a rep's time zone (None: back to the default); the digest follows it."""
    rep = await session.get(Rep, rep_id)
    if rep is None:
        raise NotFoundError(f"rep {rep_id} does not exist")
    rep.timezone = check_timezone(timezone) if timezone else None
    await session.flush()
    return rep


async def deactivate_rep(session: AsyncSession, rep_id: int) -> Rep:
    """Stop assigning leads to a rep. Their leads keep them as owner until notified again,
    when :func:`assign_owner` hands each to an active rep."""
    rep = await session.get(Rep, rep_id)
    if rep is None:
        raise NotFoundError(f"rep {rep_id} does not exist")
    rep.active = False
    await session.flush()
    return rep


async def assign_owner(session: AsyncSession, lead_id: int, *, now: datetime) -> Rep | None:
    """The lead's owner, assigning the next active rep when it has none (or an inactive one).

    Runs in the caller's transaction. Returns None when there is no active rep at all.
    """
    lock = select(Lead.owner_rep_id).where(Lead.id == lead_id).with_for_update()
    row = (await session.execute(lock)).one_or_none()
    if row is None:
        raise NotFoundError(f"lead {lead_id} does not exist")
    if row.owner_rep_id is not None:
        owner = await session.get(Rep, row.owner_rep_id)
        if owner is not None and owner.active:
            return owner
    rep = await _next_rep(session)
    if rep is None:
        return None
    # Strictly after every earlier assignment, so ties (same ``now``, coarse clocks) never
    # send two leads in a row to the same rep.
    latest = await session.scalar(select(func.max(Rep.last_assigned_at)))
    rep.last_assigned_at = max(now, latest + _TICK) if latest is not None else now
    await session.execute(
        update(Lead)
        .where(Lead.id == lead_id)
        .values(owner_rep_id=rep.id, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    return rep


async def _next_rep(session: AsyncSession) -> Rep | None:
    query = (
        select(Rep)
        .where(Rep.active.is_(True))
        .order_by(Rep.last_assigned_at.asc().nulls_first(), Rep.id)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(_ASSIGN_LOCK)))
    return await session.scalar(query)
