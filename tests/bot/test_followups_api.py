"""The approval API over the real app: list drafts awaiting approval, approve, reject."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession

from bot.http.appkeys import SESSIONS
from bot.http.followups import CADENCE, SWEEPER
from scheduler.followups.touches import start_sequence
from tests.bot.support import AUTH


async def test_approve_and_reject(client: TestClient[Any, Any]) -> None:
    app = client.app
    assert app is not None
    lead = {"name": "Dana Smith", "email": "dana@example.com"}
    created = await client.post("/api/leads", json=lead, headers=AUTH)
    lead_id = (await created.json())["lead"]["id"]
    # A fixed working-day morning: a real clock in the evening would put the touch after
    # the quiet hours (20:00-08:00), and this sweep would find nothing due.
    now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    async with app[SESSIONS].begin() as session:
        assert isinstance(session, AsyncSession)
        await start_sequence(session, lead_id, "reactivation", cadence=app[CADENCE], now=now)
    result = await app[SWEEPER].sweep(now)
    assert result.awaiting_approval == 1

    listed = await client.get("/api/touches?status=awaiting_approval", headers=AUTH)
    touches = (await listed.json())["touches"]
    assert [t["step"] for t in touches] == ["reactivate"]
    touch = touches[0]
    assert touch["draft"].startswith("Hi Dana") and touch["subject"] == "Still on your list, Dana?"

    approved = await client.post(
        f"/api/touches/{touch['id']}/approve",
        json={"by": "rep@acme", "text": "Hi Dana, quick hello."},
        headers=AUTH,
    )
    assert approved.status == 200
    body = (await approved.json())["touch"]
    assert (body["status"], body["draft"], body["approved_by"]) == (
        "sent",
        "Hi Dana, quick hello.",
        "rep@acme",
    )
    again = await client.post(f"/api/touches/{touch['id']}/approve", headers=AUTH)
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "touch_state"

    missing = await client.post("/api/touches/999999/reject", json={"reason": "x"}, headers=AUTH)
    assert missing.status == 404
    bad = await client.get("/api/touches?status=nope", headers=AUTH)
    assert bad.status == 400
    unauthorized = await client.get("/api/touches")
    assert unauthorized.status == 401
