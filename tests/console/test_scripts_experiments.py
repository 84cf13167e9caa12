"""The scripts page shows each script's A/B experiments (issue 16, item 6): the one running
and, per experiment, each variant's rates and its test against the control."""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.app import create_app
from tests.bot.support import make_settings
from tests.console.support import ConsoleClient
from tests.support.experiments import Arm, seed_arms

ROOT = Path(__file__).resolve().parents[2]
MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def console_client(
    engine: AsyncEngine, aiohttp_client: MakeClient, tmp_path: Path
) -> TestClient[Any, Any]:
    """The service with the shipped scripts plus the example experiment script."""
    folder = tmp_path / "scripts"
    shutil.copytree(ROOT / "dialogs" / "scripts", folder)
    shutil.copy(ROOT / "tests" / "data" / "experiments" / "b2b_experiment.yaml", folder)
    settings = make_settings(first_touch=False, dialogs_dir=folder)
    return await aiohttp_client(create_app(settings, engine=engine, run_scheduler=False))


def text_of(markup: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", markup).split())


def rows_of(page: str, table_id: str) -> list[list[str]]:
    table = page[page.index(f'id="{table_id}"') :]
    table = table[: table.index("</table>")]
    body = table[table.index("<tbody>") :]
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


async def test_the_scripts_page_shows_each_variant_with_its_test(
    admin: ConsoleClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await seed_arms(
        sessions,
        [Arm("control", 200, 60, 20), Arm("short", 200, 70, 36)],
        script_id="b2b_experiment",
    )
    await seed_arms(sessions, [Arm("a", 10, 2, 1), Arm("b", 12, 5, 4)], experiment="old-test")
    response = await admin.get("/console/scripts")
    assert response.status == 200
    page = html.unescape(await response.text())
    section = text_of(page[page.index('id="script-b2b_experiment"') :])
    assert "Running greeting-test-1 : new conversations are split control 50 / short 50" in section
    assert rows_of(page, "experiment-b2b_experiment-greeting-test-1") == [
        ["control control", "200", "60", "30.0%", "20", "10.0%", "", "", ""],
        ["short", "200", "70", "35.0%", "36", "18.0%", "+2.31", "0.0211", "yes"],
    ]
    # An experiment of another script, over: its results stay, flagged as too small.
    old = rows_of(page, "experiment-b2b_default-old-test")
    assert old[1][:2] == ["b", "12"] and old[1][-1] == "no too few"
    assert "Too few conversations for a reliable test" in page


async def test_a_running_experiment_without_conversations_says_so(admin: ConsoleClient) -> None:
    page = html.unescape(await (await admin.get("/console/scripts")).text())
    section = text_of(page[page.index('id="script-b2b_experiment"') :])
    assert "Running greeting-test-1" in section and "No conversations in it yet." in section
    assert 'id="experiment-' not in page
