"""Console users: who may sign in, with which role, and their server-side sessions.

Passwords are hashed with argon2id (``argon2-cffi``'s defaults, RFC 9106's low-memory
profile); hashing runs in a worker thread so a login does not stall the event loop.
:func:`authenticate` answers every failure (unknown email, wrong password, locked or
deactivated user) with the same ``None`` after the same work: an unknown email is checked
against a dummy hash, so neither the answer nor its timing tells whether an account exists.
``max_failures`` wrong passwords in a row lock the user for ``lock_minutes``.

Sessions are random tokens; only their SHA-256 is stored. A session is alive until revoked
(logout, password change, deactivation: every session of the user) or idle for longer than
the timeout the caller passes (a setting of the console's HTTP layer, once it exists).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from scheduler.errors import InvalidLeadError, InvalidUserError, NotFoundError
from scheduler.pipeline.contacts import normalize_email
from scheduler.store import Session
from scheduler.store import users as store

if TYPE_CHECKING:
    from scheduler.store.models import User

MIN_PASSWORD_LENGTH = 12
# argon2 hashes whatever it is given: a bound keeps a huge "password" from costing the server.
MAX_PASSWORD_LENGTH = 1024
MAX_FAILURES = 5
LOCK_MINUTES = 15


class Role(StrEnum):
    """What a console user may do: ``admin`` everything, ``rep`` work their leads."""

    ADMIN = "admin"
    REP = "rep"


@dataclass(frozen=True)
class ConsoleLogin:
    """A live session resolved from its token: the user and the CSRF token forms must echo."""

    user: User
    csrf_token: str


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id with the library's current recommended parameters


@cache
def _dummy_hash() -> str:
    """A hash to verify against when the email is unknown (same cost as a real one)."""
    return _hasher().hash(secrets.token_urlsafe(16))


async def hash_password(password: str) -> str:
    """The argon2id PHC string of ``password`` (checked against the length policy)."""
    check_password(password)
    return await asyncio.to_thread(_hasher().hash, password)


def check_password(password: str) -> None:
    """Raise :class:`InvalidUserError` when ``password`` breaks the length policy."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidUserError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidUserError(f"a password has at most {MAX_PASSWORD_LENGTH} characters")


async def _verify(password_hash: str, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher().verify(password_hash, password[: MAX_PASSWORD_LENGTH + 1])
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


def normalize_user_email(raw: str) -> str:
    """The canonical (lower-case) form of a user's email, or :class:`InvalidUserError`."""
    try:
        return normalize_email(raw)
    except InvalidLeadError as exc:
        raise InvalidUserError(exc.message) from None


async def create_user(
    session: Session,
    *,
    email: str,
    password: str,
    role: Role | str,
    rep_email: str | None = None,
    now: datetime,
) -> User:
    """Add a user. A ``rep`` user is linked to the existing rep with ``rep_email``; an
    ``admin`` is linked to none. Raises :class:`InvalidUserError` on bad input."""
    try:
        role = Role(role)
    except ValueError:
        raise InvalidUserError(f"unknown role {role!r}: use admin or rep") from None
    clean = normalize_user_email(email)
    rep_id = None
    if role is Role.REP:
        if not rep_email:
            raise InvalidUserError("a rep user must be linked to a rep: give the rep's email")
        rep = await store.rep_by_email(session, normalize_user_email(rep_email))
        if rep is None:
            raise InvalidUserError(f"there is no rep with email {rep_email.strip()}")
        rep_id = rep.id
    elif rep_email:
        raise InvalidUserError("an admin is not linked to a rep: leave out the rep")
    password_hash = await hash_password(password)
    return await store.add_user(
        session, email=clean, password_hash=password_hash, role=role, rep_id=rep_id, now=now
    )


async def _user_by_email(session: Session, email: str) -> User:
    user = await store.user_by_email(session, normalize_user_email(email))
    if user is None:
        raise NotFoundError(f"there is no user with email {email.strip()}")
    return user


async def authenticate(
    session: Session,
    email: str,
    password: str,
    *,
    now: datetime,
    max_failures: int = MAX_FAILURES,
    lock_minutes: float = LOCK_MINUTES,
) -> User | None:
    """The user when ``email`` and ``password`` match an active, unlocked user; else None.

    Returns rather than raises so the caller commits the failure count. A wrong password
    counts a failure; the ``max_failures``-th locks the user for ``lock_minutes`` (and
    starts the count again). While locked even the right password is refused.
    """
    try:
        clean = normalize_email(email)
    except InvalidLeadError:
        clean = None
    if clean and "\x00" in clean:  # no user has one, and PostgreSQL refuses it in a query
        clean = None
    found = await store.user_by_email(session, clean) if clean else None
    user = await store.lock_user_row(session, found.id) if found is not None else None
    if user is None:
        await _verify(_dummy_hash(), password)  # the same work as for a real user
        return None
    matches = await _verify(user.password_hash, password)
    if not user.active or (user.locked_until is not None and user.locked_until > now):
        return None
    if not matches:
        user.failed_logins += 1
        if user.failed_logins >= max_failures:
            user.locked_until = now + timedelta(minutes=lock_minutes)
            user.failed_logins = 0
        await session.flush()
        return None
    user.failed_logins = 0
    user.locked_until = None
    if _hasher().check_needs_rehash(user.password_hash):  # parameters raised since
        user.password_hash = await asyncio.to_thread(_hasher().hash, password)
    await session.flush()
    return user


async def change_password(
    session: Session, email: str, new_password: str, *, now: datetime
) -> User:
    """Set a new password, lift any lock, and revoke every session of the user (logout
    everywhere)."""
    user = await _user_by_email(session, email)
    user.password_hash = await hash_password(new_password)
    user.password_changed_at = now
    user.failed_logins = 0
    user.locked_until = None
    await store.revoke_user_sessions(session, user.id)
    await session.flush()
    return user


async def deactivate_user(session: Session, email: str) -> User:
    """Refuse the user's logins from now on and revoke every session of theirs."""
    user = await _user_by_email(session, email)
    user.active = False
    await store.revoke_user_sessions(session, user.id)
    await session.flush()
    return user


async def list_users(session: Session) -> list[User]:
    """Every user, active or not, in id order."""
    return await store.list_users(session)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def start_session(session: Session, user: User, *, now: datetime) -> tuple[str, str]:
    """Open a session for an authenticated user: ``(token, csrf_token)``. The token goes in
    the cookie; only its hash is stored."""
    token = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    await store.add_session(
        session, token_hash=_token_hash(token), user_id=user.id, csrf_token=csrf_token, now=now
    )
    return token, csrf_token


async def resolve_session(
    session: Session, token: str, *, now: datetime, idle: timedelta
) -> ConsoleLogin | None:
    """The live session of ``token``, its ``last_seen_at`` moved to ``now``; None when the
    token is unknown, revoked, idle for longer than ``idle`` (then revoked), or its user
    is deactivated."""
    row = await store.session_by_hash(session, _token_hash(token))
    if row is None or row.revoked:
        return None
    if now - row.last_seen_at > idle:
        row.revoked = True
        await session.flush()
        return None
    user = await store.get_user(session, row.user_id)
    if not user.active:
        return None
    row.last_seen_at = now
    await session.flush()
    return ConsoleLogin(user=user, csrf_token=row.csrf_token)


async def end_session(session: Session, token: str) -> bool:
    """Log out: revoke the session of ``token``; return whether it was live."""
    return await store.revoke_session(session, _token_hash(token))


async def purge_sessions(session: Session, *, now: datetime, idle: timedelta) -> int:
    """Delete sessions that can never be used again (revoked, or idle past ``idle``)."""
    return await store.delete_stale_sessions(session, seen_before=now - idle)
