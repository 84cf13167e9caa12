"""``leadbot reps add --timezone`` / ``reps timezone`` and ``leadbot digest --rep ID``."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli.main import app
from scheduler.pipeline.leads import LeadIn
from scheduler.store.engine import create_engine, session_factory
from scheduler.store.models import OutboxItem, utcnow
from tests.support.reactivation import waiting_reactivation_draft

SECRET = "c" * 32


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in list(os.environ):
        if name.startswith("LEADBOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return {
        "LEADBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db",
        "LEADBOT_SECRET_KEY": SECRET,
        "LEADBOT_PUBLIC_URL": "https://bot.example.com",
    }


async def _waiting_draft(url: str, rep_id: int) -> int:
    engine = create_engine(url)
    try:
        async with session_factory(engine).begin() as session:
            now = utcnow()
            touch = await waiting_reactivation_draft(
                session,
                LeadIn(email="dana@northwind.example", name="Dana Smith", company="Northwind"),
                owner=rep_id,
                now=now,
                age_days=100,
                dormant_days=74,
                draft="Hi Dana, shall we catch up?",
                subject="Still on your list, Dana?",
            )
            return touch.id
    finally:
        await engine.dispose()


async def _digests(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            return list(await session.scalars(select(OutboxItem.key)))
    finally:
        await engine.dispose()


def test_rep_time_zones_from_the_command_line(env: dict[str, str]) -> None:
    runner = CliRunner()
    bad = runner.invoke(
        app, ["reps", "add", "Ana", "--email", "ana@acme.example", "--timezone", "EST5"], env=env
    )
    assert bad.exit_code == 2 and "not a time zone" in bad.output
    added = runner.invoke(
        app,
        ["reps", "add", "Ana", "--email", "ana@acme.example", "--timezone", "Europe/Berlin"],
        env=env,
    )
    assert added.exit_code == 0, added.output
    assert "Europe/Berlin" in runner.invoke(app, ["reps", "list"], env=env).output
    typo = runner.invoke(app, ["reps", "timezone", "1", "Europe/Berln"], env=env)
    assert typo.exit_code == 2 and "not a time zone" in typo.output
    changed = runner.invoke(app, ["reps", "timezone", "1", "Asia/Tokyo"], env=env)
    assert changed.exit_code == 0 and "Asia/Tokyo" in changed.output
    reset = runner.invoke(app, ["reps", "timezone", "1", "default"], env=env)
    assert reset.exit_code == 0 and "(default)" in reset.output
    assert runner.invoke(app, ["reps", "timezone", "9", "UTC"], env=env).exit_code == 1


def test_digest_dry_run_prints_and_sends_nothing_then_queues_once(env: dict[str, str]) -> None:
    runner = CliRunner()
    url = env["LEADBOT_DATABASE_URL"]
    added = runner.invoke(
        app, ["reps", "add", "Ana", "--email", "ana@acme.example", "--timezone", "UTC"], env=env
    )
    assert added.exit_code == 0, added.output
    empty = runner.invoke(app, ["digest", "--rep", "1", "--dry-run"], env=env)
    assert empty.exit_code == 0 and "no reactivation drafts" in empty.output
    touch_id = asyncio.run(_waiting_draft(url, 1))

    dry = runner.invoke(app, ["digest", "--rep", "1", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    text = dry.output
    assert "To: ana@acme.example" in text and "1 reactivation draft to approve" in text
    assert "Dana Smith (Northwind): went quiet, 74 days ago" in text
    assert "Hi Dana, shall we catch up?" in text
    assert re.search(r"https://bot\.example\.com/digest/approve/\S+", text)
    assert f"/console/approvals?touch={touch_id}" in text
    assert asyncio.run(_digests(url)) == []  # a dry run stores nothing

    sent = runner.invoke(app, ["digest", "--rep", "1"], env=env)
    assert sent.exit_code == 0 and "queued" in sent.output
    again = runner.invoke(app, ["digest", "--rep", "1"], env=env)
    assert again.exit_code == 0 and "already" in again.output
    [key] = asyncio.run(_digests(url))
    assert key.startswith("digest:rep:1:")
    missing = runner.invoke(app, ["digest", "--rep", "42", "--dry-run"], env=env)
    assert missing.exit_code == 2 and "rep 42" in missing.output
