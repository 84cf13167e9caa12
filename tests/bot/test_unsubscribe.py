"""One-click unsubscribe: POST unsubscribes for good, GET only asks, bad tokens change nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.app import create_app
from bot.channels.email import unsubscribe_url
from bot.http.signing import Signer, sign
from scheduler.store.models import Lead, Suppression
from tests.bot.email_support import (
    PAYLOAD_TEXT,
    SECRET,
    add_touch,
    make_channel,
    make_lead,
    send_via_outbox,
    touch_statuses,
)
from tests.bot.support import make_settings
from tests.support.fakes.smtp import FakeSmtp

Sessions = async_sessionmaker[AsyncSession]
Client = TestClient[Any, Any]


@pytest.fixture
async def client(engine: AsyncEngine, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    """The service without its scheduler loop: these tests watch touches stay put."""
    return await aiohttp_client(create_app(make_settings(), engine=engine, run_scheduler=False))


def _path(lead_id: int | None, address: str) -> str:
    url = unsubscribe_url("https://bot.example.com", Signer(SECRET), lead_id, address)
    return url.removeprefix("https://bot.example.com")


async def _state(sessions: Sessions, lead_id: int) -> tuple[Lead, list[Suppression]]:
    async with sessions() as session:
        lead = await session.get_one(Lead, lead_id)
        return lead, list(await session.scalars(select(Suppression)))


async def test_one_click_post_unsubscribes_and_nothing_is_ever_sent_again(
    client: Client, sessions: Sessions
) -> None:
    lead = await make_lead(sessions)
    await add_touch(sessions, lead.id, "day3")
    path = _path(lead.id, "jane@acme.com")
    # What Gmail/Yahoo send (RFC 8058): a form body, no cookies, no auth.
    response = await client.post(
        path, data={"List-Unsubscribe": "One-Click"}, allow_redirects=False
    )
    assert response.status == 200 and response.content_type == "text/html"
    assert "jane@acme.com" in await response.text()
    noted, suppressions = await _state(sessions, lead.id)
    assert noted.opted_out_at is not None and noted.email_status == "unsubscribe"
    assert [(s.address, s.reason) for s in suppressions] == [("jane@acme.com", "unsubscribe")]
    assert await touch_statuses(sessions, lead.id) == ["cancelled"]
    # The same link again (multipart this time) is still a 200, and changes nothing.
    form = aiohttp.FormData({"List-Unsubscribe": "One-Click"}, default_to_multipart=True)
    again = await client.post(path, data=form, allow_redirects=False)
    assert again.status == 200
    assert (await _state(sessions, lead.id))[0].opted_out_at == noted.opted_out_at
    # And a later email to the lead is refused before any SMTP conversation.
    async with FakeSmtp() as smtp:
        state, row = await send_via_outbox(
            sessions, make_channel(sessions, smtp.url), "jane@acme.com", PAYLOAD_TEXT, key="later"
        )
    assert state == "failed" and "suppressed" in (row.error or "")
    assert smtp.rcpt_attempts == []


async def test_get_only_shows_a_confirmation_form(client: Client, sessions: Sessions) -> None:
    lead = await make_lead(sessions)
    await add_touch(sessions, lead.id, "day3")
    response = await client.get(_path(lead.id, "jane@acme.com"), allow_redirects=False)
    assert response.status == 200
    page = await response.text()
    assert '<form method="post">' in page and "jane@acme.com" in page
    noted, suppressions = await _state(sessions, lead.id)
    assert noted.opted_out_at is None and suppressions == []
    assert await touch_statuses(sessions, lead.id) == ["pending"]


async def test_bad_tokens_get_400_and_change_nothing(client: Client, sessions: Sessions) -> None:
    lead = await make_lead(sessions)
    good = _path(lead.id, "jane@acme.com")
    payload, mac = good.removeprefix("/unsubscribe/").split(".")
    forged_data = sign("unsubscribe", {"lead": lead.id, "email": "jane@acme.com"}, secret="other")
    other_purpose = sign("approve", {"lead": lead.id, "email": "jane@acme.com"}, secret=SECRET)
    for token in (
        f"{payload}.{mac[:-2]}xx",  # altered signature
        f"{payload[:-2]}xx.{mac}",  # altered data
        forged_data,  # signed with another key
        other_purpose,  # an approval link is not an unsubscribe link
        "garbage",
    ):
        for method in ("GET", "POST"):
            response = await client.request(method, f"/unsubscribe/{token}", allow_redirects=False)
            assert response.status == 400, (method, token)
            assert response.content_type == "text/html"
    noted, suppressions = await _state(sessions, lead.id)
    assert noted.opted_out_at is None and suppressions == []
