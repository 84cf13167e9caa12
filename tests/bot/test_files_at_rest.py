"""Secrets and personal data at rest are owner-only (issue 12, item 24): the embedded
secrets file and the SQLite database (with its -wal and -shm files) are mode 0600."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.secrets_store import SECRETS_FILE, with_embedded_secrets
from scheduler.store.engine import create_engine
from tests.bot.support import make_settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> object:
    old = os.umask(0o022)  # what most machines have: new files 0644
    yield
    os.umask(old)


def test_a_readable_secrets_file_is_private_once_a_key_is_added(tmp_path: Path) -> None:
    path = tmp_path / SECRETS_FILE
    path.write_text(json.dumps({"secret_key": "kept-as-is"}))
    path.chmod(0o644)
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'leadbot.db'}", secret_key="", api_token=""
    )
    filled = with_embedded_secrets(settings)
    assert mode(path) == 0o600
    stored = json.loads(path.read_text())
    assert stored["secret_key"] == "kept-as-is" == filled.secret_key.get_secret_value()
    assert stored["api_token"] == filled.api_token.get_secret_value()


def test_a_readable_secrets_file_is_made_private_when_only_read(tmp_path: Path) -> None:
    path = tmp_path / SECRETS_FILE
    path.write_text(json.dumps({"secret_key": "a", "api_token": "b"}))
    path.chmod(0o644)
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'leadbot.db'}", secret_key="", api_token=""
    )
    assert with_embedded_secrets(settings).api_token.get_secret_value() == "b"
    assert mode(path) == 0o600


async def test_a_new_sqlite_database_and_its_wal_are_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "leadbot.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (x TEXT)"))
            await connection.execute(text("INSERT INTO t VALUES ('jane@example.com')"))
        wal = path.with_name("leadbot.db-wal")
        assert wal.exists()  # WAL mode, connection still open
        assert (mode(path), mode(wal)) == (0o600, 0o600)
        assert mode(path.with_name("leadbot.db-shm")) == 0o600
    finally:
        await engine.dispose()


async def test_an_existing_readable_database_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "leadbot.db"
    first = create_engine(f"sqlite+aiosqlite:///{path}")
    async with first.begin() as connection:
        await connection.execute(text("CREATE TABLE t (x TEXT)"))
    await first.dispose()
    companions = [path.with_name("leadbot.db-wal"), path.with_name("leadbot.db-shm")]
    for one in (path, *companions):
        one.touch()
        one.chmod(0o644)  # as an older version (or a copy) left them
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        assert [mode(p) for p in (path, *companions)] == [0o600] * 3
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT count(*) FROM t")) == 0
    finally:
        await engine.dispose()
