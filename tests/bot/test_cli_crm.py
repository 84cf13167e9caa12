"""``leadbot crm backfill`` run as an operator would, against a fake HubSpot (served from
another thread: the command runs its own event loop)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli.main import app
from tests.support.fakes.hubspot import FakeHubSpot, running
from tests.support.lead_csv import write_leads_csv

runner = CliRunner()


@pytest.fixture
def hubspot() -> Iterator[FakeHubSpot]:
    fake = FakeHubSpot()
    loop = asyncio.new_event_loop()
    ready, stop = threading.Event(), asyncio.Event()

    async def serve() -> None:
        async with running(fake):
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield fake
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("LEADBOT_"):
            monkeypatch.delenv(name)
    return {"LEADBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db"}


def test_backfill_pushes_every_lead_once_even_when_run_twice(
    env: dict[str, str], tmp_path: Path, hubspot: FakeHubSpot
) -> None:
    path = tmp_path / "leads.csv"
    expected = write_leads_csv(path, 150, bad_share=0.0, dup_share=0.0)
    assert runner.invoke(app, ["leads", "import", str(path)], env=env).exit_code == 0
    configured = env | {
        "LEADBOT_HUBSPOT_TOKEN": hubspot.token,
        "LEADBOT_HUBSPOT_API_URL": hubspot.base_url,
    }

    first = runner.invoke(app, ["crm", "backfill", "--run", "one"], env=configured)
    second = runner.invoke(app, ["crm", "backfill", "--run", "two"], env=configured)

    assert first.exit_code == 0, first.output
    n = expected.created
    assert f"leads: {n}  synced: {n}  retrying later: 0  failed: 0" in first.output
    assert second.exit_code == 0, second.output
    assert len(hubspot.objects["contacts"]) == n  # the second run updated, never twinned
    assert len(hubspot.objects["deals"]) == n


def test_backfill_without_a_token_says_so(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["crm", "backfill"], env=env)
    assert result.exit_code != 0
    assert "LEADBOT_HUBSPOT_TOKEN" in result.output
