"""``leadbot users``: add (prompted or from stdin), list, deactivate, password (issue 14,
item 1), on the embedded SQLite store as an operator runs them."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli.main import app
from scheduler.pipeline import users
from scheduler.store.engine import create_engine, session_factory
from scheduler.store.models import utcnow

runner = CliRunner()
PASSWORD = "correct horse battery"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A clean working directory and no LEADBOT_* variable of the developer's shell."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("LEADBOT_", "OPENAI_")) and not name.startswith("LEADBOT_TEST_"):
            monkeypatch.delenv(name)
    return {"LEADBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db"}


def can_login(env: dict[str, str], email: str, password: str) -> bool:
    async def check() -> bool:
        engine = create_engine(env["LEADBOT_DATABASE_URL"])
        try:
            async with session_factory(engine).begin() as session:
                user = await users.authenticate(session, email, password, now=utcnow())
                return user is not None
        finally:
            await engine.dispose()

    return asyncio.run(check())


def add(env: dict[str, str], *args: str, stdin: str = PASSWORD + "\n") -> object:
    return runner.invoke(app, ["users", "add", *args, "--password-stdin"], input=stdin, env=env)


def test_add_asks_the_password_twice_and_the_user_can_log_in(env: dict[str, str]) -> None:
    result = runner.invoke(
        app,
        ["users", "add", "Boss@Seller.com", "--role", "admin"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "boss@seller.com (admin)" in result.output
    assert PASSWORD not in result.output  # hidden input is not echoed
    assert can_login(env, "boss@seller.com", PASSWORD)


def test_a_mistyped_confirmation_is_asked_again(env: dict[str, str]) -> None:
    result = runner.invoke(
        app,
        ["users", "add", "boss@seller.com", "--role", "admin"],
        input=f"{PASSWORD}\ntypo {PASSWORD}\n{PASSWORD}\n{PASSWORD}\n",
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert can_login(env, "boss@seller.com", PASSWORD)


def test_usage_errors_are_one_line_and_exit_2(env: dict[str, str]) -> None:
    cases = [
        (["boss@seller.com", "--role", "owner"], "unknown role 'owner'"),
        (["ana@seller.com", "--role", "rep"], "needs --rep"),
        (["boss@seller.com", "--role", "admin", "--rep", "a@b.co"], "not linked to a rep"),
        (["not-an-email", "--role", "admin"], "invalid email address"),
    ]
    for args, message in cases:
        result = add(env, *args)
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert "Traceback" not in result.output
    short = add(env, "boss@seller.com", "--role", "admin", stdin="short\n")
    assert short.exit_code == 2
    assert "at least 12 characters" in short.output


def test_a_rep_user_needs_an_existing_rep(env: dict[str, str]) -> None:
    missing = add(env, "ana@seller.com", "--role", "rep", "--rep", "ana@seller.com")
    assert missing.exit_code == 1
    assert "no rep with email ana@seller.com" in missing.output
    rep = runner.invoke(app, ["reps", "add", "Ana", "--email", "ana@seller.com"], env=env)
    assert rep.exit_code == 0, rep.output
    added = add(env, "ana@seller.com", "--role", "rep", "--rep", "ana@seller.com")
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["users", "list"], env=env)
    assert listed.exit_code == 0
    assert "ana@seller.com" in listed.output and "rep" in listed.output
    assert "$argon2" not in listed.output


def test_password_and_deactivate(env: dict[str, str]) -> None:
    assert add(env, "boss@seller.com", "--role", "admin").exit_code == 0
    changed = runner.invoke(
        app,
        ["users", "password", "boss@seller.com", "--password-stdin"],
        input="a brand new password\n",
        env=env,
    )
    assert changed.exit_code == 0, changed.output
    assert not can_login(env, "boss@seller.com", PASSWORD)
    assert can_login(env, "boss@seller.com", "a brand new password")
    gone = runner.invoke(app, ["users", "deactivate", "BOSS@seller.com"], env=env)
    assert gone.exit_code == 0, gone.output
    assert not can_login(env, "boss@seller.com", "a brand new password")
    listed = runner.invoke(app, ["users", "list"], env=env)
    assert "no" in listed.output
    unknown = runner.invoke(app, ["users", "deactivate", "ghost@seller.com"], env=env)
    assert unknown.exit_code == 1
    assert "no user with email ghost@seller.com" in unknown.output
