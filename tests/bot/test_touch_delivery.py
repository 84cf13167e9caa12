"""A touch's status follows its delivery (issue 12, item 12), seen through the API: an email
the SMTP server refuses is not ``sent`` and does not move the lead to contacted."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import create_app
from bot.email.first_touch_service import RUNNER
from tests.bot.support import AUTH, make_settings
from tests.support.fakes.smtp import FakeSmtp

LEADS = json.loads((Path(__file__).parents[1] / "data" / "first_touch" / "leads.json").read_text())
Client = TestClient[Any, Any]


@pytest.fixture
async def smtp() -> AsyncIterator[FakeSmtp]:
    async with FakeSmtp() as server:
        yield server


@pytest.fixture
def service(
    engine: AsyncEngine, smtp: FakeSmtp, aiohttp_client: Callable[..., Awaitable[Client]]
) -> Callable[[], Awaitable[Client]]:
    async def make() -> Client:
        settings = make_settings(
            smtp_url=smtp.url,
            email_from="Acme <sales@bot.example.com>",
            public_url="https://bot.example.com",
        )
        return await aiohttp_client(create_app(settings, engine=engine, run_scheduler=False))

    return make


async def first_reply(client: Client) -> tuple[dict[str, Any], dict[str, Any]]:
    """Post the warm lead, let its first touch run; (lead detail, first touch from the list)."""
    response = await client.post("/api/leads", json=LEADS["warm"], headers=AUTH)
    assert response.status == 201, await response.text()
    lead_id = (await response.json())["lead"]["id"]
    await client.app[RUNNER].drain()
    listed = await (await client.get(f"/api/touches?lead_id={lead_id}", headers=AUTH)).json()
    detail = await (await client.get(f"/api/leads/{lead_id}", headers=AUTH)).json()
    [touch] = [t for t in listed["touches"] if t["step"] == "first_reply"]
    [timeline] = [t for t in detail["touches"] if t["step"] == "first_reply"]
    assert timeline == touch  # the lead's timeline shows the same touch
    return detail, touch


@pytest.mark.parametrize(
    ("refusal", "status", "row"),
    [
        ({"greeting_reply": "421 4.3.2 Service not available"}, "queued", "pending"),
        (
            {"rcpt_replies": {"dana.whitfield@northwind-logistics.com": "550 5.1.1 no such user"}},
            "failed",
            "failed",
        ),
    ],
)
async def test_a_refused_email_is_not_a_sent_touch(
    service: Callable[[], Awaitable[Client]],
    smtp: FakeSmtp,
    refusal: dict[str, Any],
    status: str,
    row: str,
) -> None:
    for name, value in refusal.items():
        setattr(smtp, name, value)
    detail, touch = await first_reply(await service())
    assert (touch["status"], touch["sent_at"]) == (status, None)
    assert touch["delivery"]["state"] == row and touch["delivery"]["error"]
    assert detail["lead"]["stage"] == "new"  # nothing reached them: not contacted
    assert smtp.received == []


async def test_an_accepted_email_is_a_sent_touch(
    service: Callable[[], Awaitable[Client]], smtp: FakeSmtp
) -> None:
    detail, touch = await first_reply(await service())
    assert touch["status"] == "sent" and touch["sent_at"]
    assert touch["delivery"]["state"] == "sent"
    assert detail["lead"]["stage"] == "contacted"
    assert len(smtp.received) == 1
