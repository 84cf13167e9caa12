"""Console users on every backend (issue 14, item 1): argon2id passwords, one answer for
every failed login, lockout and its end, logout everywhere, idle sessions ending."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scheduler.errors import InvalidUserError, NotFoundError
from scheduler.pipeline import users
from scheduler.store.models import User
from scheduler.store.reps import add_rep
from scheduler.store.users import user_by_email

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
PASSWORD = "correct horse battery"
IDLE = timedelta(minutes=30)
Sessions = async_sessionmaker[AsyncSession]


async def make_admin(sessions: Sessions, email: str = "Boss@Seller.com") -> User:
    async with sessions.begin() as session:
        return await users.create_user(
            session, email=email, password=PASSWORD, role="admin", now=NOW
        )


async def login(sessions: Sessions, email: str, password: str, now: datetime) -> User | None:
    async with sessions.begin() as session:
        return await users.authenticate(session, email, password, now=now)


async def stored(sessions: Sessions, email: str) -> User:
    async with sessions() as session:
        user = await user_by_email(session, email)
    assert user is not None
    return user


async def start(sessions: Sessions, user: User, now: datetime = NOW) -> tuple[str, str]:
    async with sessions.begin() as session:
        return await users.start_session(session, user, now=now)


async def resolve(sessions: Sessions, token: str, now: datetime) -> users.ConsoleLogin | None:
    async with sessions.begin() as session:
        return await users.resolve_session(session, token, now=now, idle=IDLE)


async def test_the_password_is_stored_as_argon2id_and_verifies(sessions: Sessions) -> None:
    user = await make_admin(sessions)
    assert user.email == "boss@seller.com"  # normalized
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    logged_in = await login(sessions, "  BOSS@seller.com ", PASSWORD, NOW)
    assert logged_in is not None and logged_in.id == user.id


async def test_an_email_is_one_user(sessions: Sessions) -> None:
    await make_admin(sessions)
    with pytest.raises(InvalidUserError, match="exists already"):
        await make_admin(sessions, "boss@SELLER.com")


async def test_a_short_password_is_refused(sessions: Sessions) -> None:
    async with sessions.begin() as session:
        with pytest.raises(InvalidUserError, match="at least 12"):
            await users.create_user(
                session, email="a@seller.com", password="short", role="admin", now=NOW
            )


async def test_unknown_email_and_wrong_password_fail_the_same_way(sessions: Sessions) -> None:
    await make_admin(sessions)
    assert await login(sessions, "nobody@seller.com", PASSWORD, NOW) is None
    assert await login(sessions, "boss@seller.com", "wrong password!", NOW) is None
    assert await login(sessions, "not an email", PASSWORD, NOW) is None
    # Only the real user's failure is counted (nothing is stored for an unknown email).
    assert (await stored(sessions, "boss@seller.com")).failed_logins == 1


async def test_an_unknown_email_costs_a_hash_verification(
    sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_admin(sessions)
    verified: list[str] = []
    real = users._verify

    async def spy(password_hash: str, password: str) -> bool:
        verified.append(password_hash)
        return await real(password_hash, password)

    monkeypatch.setattr(users, "_verify", spy)
    await login(sessions, "nobody@seller.com", PASSWORD, NOW)
    await login(sessions, "boss@seller.com", "wrong password!", NOW)
    assert len(verified) == 2
    assert all(h.startswith("$argon2id$") for h in verified)


async def test_repeated_failures_lock_the_user_until_the_time_has_passed(
    sessions: Sessions,
) -> None:
    await make_admin(sessions)
    for attempt in range(users.MAX_FAILURES):
        assert await login(sessions, "boss@seller.com", f"wrong {attempt}", NOW) is None
    locked = await stored(sessions, "boss@seller.com")
    assert locked.locked_until == NOW + timedelta(minutes=users.LOCK_MINUTES)
    # Locked: even the right password is refused, until the lock has run out.
    almost = NOW + timedelta(minutes=users.LOCK_MINUTES) - timedelta(seconds=1)
    assert await login(sessions, "boss@seller.com", PASSWORD, almost) is None
    later = NOW + timedelta(minutes=users.LOCK_MINUTES, seconds=1)
    assert await login(sessions, "boss@seller.com", PASSWORD, later) is not None
    unlocked = await stored(sessions, "boss@seller.com")
    assert (unlocked.failed_logins, unlocked.locked_until) == (0, None)


async def test_fewer_failures_than_the_limit_do_not_lock(sessions: Sessions) -> None:
    await make_admin(sessions)
    for attempt in range(users.MAX_FAILURES - 1):
        await login(sessions, "boss@seller.com", f"wrong {attempt}", NOW)
    assert await login(sessions, "boss@seller.com", PASSWORD, NOW) is not None
    assert (await stored(sessions, "boss@seller.com")).failed_logins == 0


async def test_a_session_resolves_to_its_user_and_csrf_token(sessions: Sessions) -> None:
    user = await make_admin(sessions)
    token, csrf = await start(sessions, user)
    found = await resolve(sessions, token, NOW + timedelta(minutes=1))
    assert found is not None
    assert (found.user.id, found.csrf_token) == (user.id, csrf)
    assert await resolve(sessions, token + "x", NOW) is None
    async with sessions.begin() as session:
        assert await users.end_session(session, token)
    assert await resolve(sessions, token, NOW + timedelta(minutes=2)) is None


async def test_an_idle_session_expires_and_use_keeps_it_alive(sessions: Sessions) -> None:
    user = await make_admin(sessions)
    token, _ = await start(sessions, user)
    # Used every 20 minutes for an hour: never idle for 30 minutes.
    for minutes in (20, 40, 60):
        assert await resolve(sessions, token, NOW + timedelta(minutes=minutes)) is not None
    assert await resolve(sessions, token, NOW + timedelta(minutes=91)) is None
    # Expired is final: coming back within the timeout of the last use does not revive it.
    assert await resolve(sessions, token, NOW + timedelta(minutes=61)) is None


async def test_purging_deletes_only_sessions_that_can_never_be_used_again(
    sessions: Sessions,
) -> None:
    user = await make_admin(sessions)
    live, _ = await start(sessions, user, NOW + timedelta(minutes=50))
    idle, _ = await start(sessions, user)
    ended, _ = await start(sessions, user, NOW + timedelta(minutes=50))
    async with sessions.begin() as session:
        await users.end_session(session, ended)
    async with sessions.begin() as session:
        purged = await users.purge_sessions(session, now=NOW + timedelta(minutes=60), idle=IDLE)
    assert purged == 2  # the idle one (seen at NOW) and the ended one
    assert await resolve(sessions, live, NOW + timedelta(minutes=61)) is not None


async def test_a_password_change_ends_every_session(sessions: Sessions) -> None:
    user = await make_admin(sessions)
    other = await make_admin(sessions, "other@seller.com")
    tokens = [(await start(sessions, user))[0] for _ in range(3)]
    others_token, _ = await start(sessions, other)
    async with sessions.begin() as session:
        await users.change_password(session, "boss@seller.com", "a new long password", now=NOW)
    for token in tokens:
        assert await resolve(sessions, token, NOW) is None
    assert await resolve(sessions, others_token, NOW) is not None  # only that user's
    assert await login(sessions, "boss@seller.com", PASSWORD, NOW) is None
    assert await login(sessions, "boss@seller.com", "a new long password", NOW) is not None


async def test_deactivation_ends_sessions_and_refuses_login(sessions: Sessions) -> None:
    user = await make_admin(sessions)
    token, _ = await start(sessions, user)
    async with sessions.begin() as session:
        await users.deactivate_user(session, "boss@seller.com")
    assert await resolve(sessions, token, NOW) is None
    assert await login(sessions, "boss@seller.com", PASSWORD, NOW) is None


async def test_unknown_users_cannot_be_changed(sessions: Sessions) -> None:
    async with sessions.begin() as session:
        with pytest.raises(NotFoundError):
            await users.deactivate_user(session, "ghost@seller.com")


async def test_a_rep_user_links_to_an_existing_rep(sessions: Sessions) -> None:
    async with sessions.begin() as session:
        rep = await add_rep(session, name="Ana", email="ana@seller.com", whatsapp=None, now=NOW)
    async with sessions.begin() as session:
        with pytest.raises(InvalidUserError, match="no rep with email"):
            await users.create_user(
                session,
                email="ana@seller.com",
                password=PASSWORD,
                role="rep",
                rep_email="nobody@seller.com",
                now=NOW,
            )
    async with sessions.begin() as session:
        with pytest.raises(InvalidUserError, match="must be linked"):
            await users.create_user(
                session, email="ana@seller.com", password=PASSWORD, role="rep", now=NOW
            )
    async with sessions.begin() as session:
        with pytest.raises(InvalidUserError, match="unknown role"):
            await users.create_user(
                session, email="ana@seller.com", password=PASSWORD, role="owner", now=NOW
            )
    async with sessions.begin() as session:
        user = await users.create_user(
            session,
            email="ana@seller.com",
            password=PASSWORD,
            role="rep",
            rep_email="ANA@seller.com",
            now=NOW,
        )
    assert (user.role, user.rep_id) == ("rep", rep.id)
