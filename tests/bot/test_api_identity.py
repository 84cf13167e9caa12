"""``POST /api/leads`` with contact points another lead owns (issue 12 item 7): the lead
chosen is answered with a ``conflict`` field; the phone is recorded, never silently dropped."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.http.appkeys import SESSIONS
from scheduler.store.models import IdentityConflict
from tests.bot.support import AUTH

Client = TestClient[Any, Any]


async def post_lead(client: Client, **body: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post("/api/leads", json=body, headers=AUTH)
    return response.status, await response.json()


async def test_a_form_matching_two_leads_says_so(client: Client) -> None:
    status, by_phone = await post_lead(client, phone="+1 415 555 0123")
    assert status == 201 and by_phone["conflict"] is None
    _, by_email = await post_lead(client, email="dana@acme.com")
    status, both = await post_lead(client, email="dana@acme.com", phone="+14155550123")
    assert status == 200 and both["lead"]["id"] == by_email["lead"]["id"]
    (conflict,) = both["conflict"]
    assert conflict["kind"] == "phone" and conflict["value"] == "+14155550123"
    assert conflict["lead_id"] == by_phone["lead"]["id"]
    async with client.app[SESSIONS]() as session:
        (stored,) = await session.scalars(select(IdentityConflict))
    assert stored.lead_id == by_email["lead"]["id"]


async def test_a_switchboard_phone_makes_a_second_lead(client: Client) -> None:
    _, dana = await post_lead(client, email="dana@acme.com", phone="+1 212 555 0100")
    status, omar = await post_lead(client, email="omar@acme.com", phone="+1 212 555 0100")
    assert status == 201 and omar["lead"]["id"] != dana["lead"]["id"]
    (conflict,) = omar["conflict"]
    assert conflict["lead_id"] == dana["lead"]["id"] and "shared phone" in conflict["reason"]
