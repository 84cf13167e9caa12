"""``leadbot leads erase ID``, run as an operator would."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli.main import app
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.store.engine import create_engine, session_factory
from scheduler.store.models import Lead, StageEvent, utcnow

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("LEADBOT_"):
            monkeypatch.delenv(name)
    return {"LEADBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db"}


async def _lead(url: str) -> int:
    engine = create_engine(url)
    try:
        async with session_factory(engine).begin() as session:
            data = LeadIn(name="Grace Hopper", email="grace@navy.example", phone="+14155550142")
            return (await intake(session, data, default_region="US", now=utcnow())).lead.id
    finally:
        await engine.dispose()


async def _state(url: str, lead_id: int) -> tuple[Lead | None, list[str]]:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            lead = await session.get(Lead, lead_id)
            reasons = await session.scalars(
                select(StageEvent.reason).where(StageEvent.lead_id == lead_id)
            )
            return lead, [str(r) for r in reasons]
    finally:
        await engine.dispose()


def test_erase_forgets_the_lead_and_can_be_repeated(env: dict[str, str], tmp_path: Path) -> None:
    assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    lead_id = asyncio.run(_lead(env["LEADBOT_DATABASE_URL"]))

    result = runner.invoke(app, ["leads", "erase", str(lead_id), "--actor", "dpo"], env=env)

    assert result.exit_code == 0, result.output
    assert f"lead {lead_id} erased" in result.output
    lead, reasons = asyncio.run(_state(env["LEADBOT_DATABASE_URL"], lead_id))
    assert lead is not None and lead.erased_at is not None
    assert (lead.name, lead.email, lead.phone) == (None, None, None)
    assert reasons == ["None", "erased"]
    # The key of erased people's suppression hashes is the embedded mode's secret key.
    assert (tmp_path / ".leadbot-secrets.json").exists()
    listing = runner.invoke(app, ["leads", "list"], env=env)
    assert "Grace" not in listing.output and "grace@" not in listing.output

    again = runner.invoke(app, ["leads", "erase", str(lead_id)], env=env)
    assert again.exit_code == 0 and "already erased" in again.output
    assert asyncio.run(_state(env["LEADBOT_DATABASE_URL"], lead_id))[1] == ["None", "erased"]
    missing = runner.invoke(app, ["leads", "erase", "999"], env=env)
    assert missing.exit_code == 1 and "does not exist" in missing.output
