"""Console users and their server-side sessions: plain reads and writes, no policy.

Password hashing, lockout and idle timeouts are decided in :mod:`scheduler.pipeline.users`;
this module only stores what it is told. Every function runs in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.errors import InvalidUserError, NotFoundError
from scheduler.store.models import ConsoleSession, Rep, User


async def add_user(
    session: AsyncSession,
    *,
    email: str,
    password_hash: str,
    role: str,
    rep_id: int | None,
    now: datetime,
) -> User:
    """Add an active user (email already normalized); raise if the email is taken."""
    if await session.scalar(select(User.id).where(User.email == email)) is not None:
        raise InvalidUserError(f"a user with email {email} exists already")
    user = User(
        email=email,
        password_hash=password_hash,
        role=role,
        rep_id=rep_id,
        active=True,
        failed_logins=0,
        locked_until=None,
        password_changed_at=now,
        created_at=now,
    )
    session.add(user)
    await session.flush()
    return user


async def rep_by_email(session: AsyncSession, email: str) -> Rep | None:
    """The rep with this (normalized) email, or None."""
    return await session.scalar(select(Rep).where(Rep.email == email))


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    """The user with this (normalized) email, or None."""
    return await session.scalar(select(User).where(User.email == email))


async def get_user(session: AsyncSession, user_id: int) -> User:
    """The user with this id; raise :class:`NotFoundError` when there is none."""
    user = await session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"user {user_id} does not exist")
    return user


async def list_users(session: AsyncSession) -> list[User]:
    """Every user, active or not, in id order."""
    return list((await session.scalars(select(User).order_by(User.id))).all())


async def lock_user_row(session: AsyncSession, user_id: int) -> User | None:
    """The user, its row locked for this transaction (failed-login counts do not race)."""
    query = select(User).where(User.id == user_id).with_for_update()
    return await session.scalar(query.execution_options(populate_existing=True))


async def revoke_user_sessions(session: AsyncSession, user_id: int) -> int:
    """Revoke every live session of a user; return how many were live."""
    result = await session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.user_id == user_id, ConsoleSession.revoked.is_(False))
        .values(revoked=True)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def add_session(
    session: AsyncSession, *, token_hash: str, user_id: int, csrf_token: str, now: datetime
) -> ConsoleSession:
    """Store a new live session keyed by the hash of its token."""
    row = ConsoleSession(
        id=token_hash,
        user_id=user_id,
        csrf_token=csrf_token,
        created_at=now,
        last_seen_at=now,
        revoked=False,
    )
    session.add(row)
    await session.flush()
    return row


async def session_by_hash(session: AsyncSession, token_hash: str) -> ConsoleSession | None:
    """The session row with this token hash (live or not), or None."""
    return await session.get(ConsoleSession, token_hash)


async def revoke_session(session: AsyncSession, token_hash: str) -> bool:
    """Revoke one session; return whether it was live."""
    result = await session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.id == token_hash, ConsoleSession.revoked.is_(False))
        .values(revoked=True)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def delete_stale_sessions(session: AsyncSession, *, seen_before: datetime) -> int:
    """Delete sessions revoked, or not seen since ``seen_before`` (idle past any timeout);
    return how many went."""
    result = await session.execute(
        delete(ConsoleSession)
        .where(or_(ConsoleSession.revoked.is_(True), ConsoleSession.last_seen_at < seen_before))
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
