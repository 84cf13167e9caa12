"""Delivery statuses that arrive before the send's wamid is recorded (issue 12, item 8).

The channel below posts Meta's status webhooks to the service *during* its send, before
returning the wamid: exactly the order in which the race happens in production (Graph
answers, Meta's status webhook comes at once, the dispatcher records a moment later).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from bot.http.appkeys import SESSIONS
from scheduler.delivery.outbox import Dispatcher, Receipt, enqueue
from scheduler.store import parked_statuses
from scheduler.store.models import Lead, OutboxItem, ParkedStatus
from tests.bot.whatsapp.conftest import Client, Recorder, fixture_bytes, lead_by_phone, post
from tests.bot.whatsapp.conftest import settle as settle_inbox

WA_ID = "972987654321"
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def status_body(
    wamid: str, status: str, *, ts: int = 1700000001, codes: tuple[int, ...] = ()
) -> bytes:
    """A Cloud API body with one status about ``wamid``."""
    entry: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(ts),
        "recipient_id": WA_ID,
    }
    if codes:
        entry["errors"] = [{"code": c, "title": "Re-engagement message"} for c in codes]
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": "106540352242922"},
        "statuses": [entry],
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(body).encode()


class EarlyStatusChannel:
    """Sends by posting the given statuses to the webhook first, then returning the wamid."""

    name = "whatsapp"

    def __init__(self, client: Client, wamid: str, statuses: list[str]) -> None:
        self.client, self.wamid, self.statuses = client, wamid, statuses

    async def send(self, recipient: str, payload: Mapping[str, Any]) -> Receipt:
        for status in self.statuses:
            response = await post(self.client, status_body(self.wamid, status))
            assert response.status == 200
        return Receipt(external_id=self.wamid)


async def _send(client: Client, wamid: str, early: list[str], key: str = "k") -> int:
    sessions = client.app[SESSIONS]
    async with sessions.begin() as session:
        item_id = await enqueue(
            session,
            key=f"test:{key}",
            channel="whatsapp",
            recipient=f"+{WA_ID}",
            payload={"kind": "text", "text": "hi"},
            now=NOW,
        )
    assert item_id is not None
    dispatcher = Dispatcher(sessions, {"whatsapp": EarlyStatusChannel(client, wamid, early)})
    assert await dispatcher.deliver(item_id, NOW) == "sent"
    return item_id


async def _item(client: Client, item_id: int) -> OutboxItem:
    async with client.app[SESSIONS]() as db:
        item = await db.get(OutboxItem, item_id)
    assert item is not None
    return item


async def _parked(client: Client) -> int:
    async with client.app[SESSIONS]() as db:
        return int(await db.scalar(select(func.count()).select_from(ParkedStatus)) or 0)


async def test_a_status_before_the_wamid_is_applied_once_it_is_recorded(
    wa: tuple[Client, Recorder],
) -> None:
    client, _ = wa
    item_id = await _send(client, "wamid.EARLY1", ["sent", "delivered"])
    item = await _item(client, item_id)
    assert (item.external_id, item.delivery_status) == ("wamid.EARLY1", "delivered")
    assert await _parked(client) == 0
    # The next status, in order, moves it on.
    assert (await post(client, status_body("wamid.EARLY1", "read"))).status == 200
    assert (await _item(client, item_id)).delivery_status == "read"


async def test_parked_statuses_out_of_order_keep_the_furthest(
    wa: tuple[Client, Recorder],
) -> None:
    client, _ = wa
    item_id = await _send(client, "wamid.EARLY2", ["read", "delivered", "sent"])
    assert (await _item(client, item_id)).delivery_status == "read"
    # A stale 'sent' redelivered after recording never overwrites 'read' either.
    assert (await post(client, status_body("wamid.EARLY2", "sent"))).status == 200
    assert (await _item(client, item_id)).delivery_status == "read"
    assert await _parked(client) == 0


async def test_an_early_failure_keeps_its_error_and_closes_the_window(
    wa: tuple[Client, Recorder],
) -> None:
    client, _ = wa
    assert (await post(client, fixture_bytes("text.json"))).status == 200
    await settle_inbox(client)
    lead = await lead_by_phone(client, f"+{WA_ID}")
    assert lead is not None
    sessions = client.app[SESSIONS]
    async with sessions.begin() as session:
        item_id = await enqueue(
            session,
            key="test:fail",
            channel="whatsapp",
            recipient=f"+{WA_ID}",
            payload={"kind": "text", "text": "hi"},
            now=NOW,
            lead_id=lead.id,
        )
    assert item_id is not None

    class Failing(EarlyStatusChannel):
        async def send(self, recipient: str, payload: Mapping[str, Any]) -> Receipt:
            body = status_body(self.wamid, "failed", ts=1800000000, codes=(131047,))
            assert (await post(self.client, body)).status == 200
            return Receipt(external_id=self.wamid)

    channel = Failing(client, "wamid.EARLY3", [])
    assert await Dispatcher(sessions, {"whatsapp": channel}).deliver(item_id, NOW) == "sent"
    item = await _item(client, item_id)
    assert item.delivery_status == "failed"
    assert item.error is not None and "131047" in item.error
    async with sessions() as db:
        fresh = await db.get(Lead, lead.id)
    assert fresh is not None
    assert fresh.whatsapp_window_closed_at == datetime.fromtimestamp(1800000000, UTC)


async def test_the_sweep_applies_late_matches_and_trims_expired(
    wa: tuple[Client, Recorder],
) -> None:
    client, _ = wa
    sessions = client.app[SESSIONS]
    for wamid in ("wamid.LATE", "wamid.NEVER"):
        assert (await post(client, status_body(wamid, "delivered"))).status == 200
    assert await _parked(client) == 2
    # The send was recorded by a transaction that could not see the parked status yet
    # (both in flight at once): nothing applied it at recording time.
    async with sessions.begin() as session:
        late = OutboxItem(
            key="test:late",
            channel="whatsapp",
            recipient=f"+{WA_ID}",
            payload={},
            state="sent",
            external_id="wamid.LATE",
        )
        session.add(late)
        await session.flush()
        late_id = late.id
    now = datetime.now(UTC)
    assert await parked_statuses.sweep(sessions, now) == (1, 0)
    assert (await _item(client, late_id)).delivery_status == "delivered"
    assert await _parked(client) == 1
    # Kept for PARK_FOR, then trimmed.
    assert await parked_statuses.sweep(sessions, now + timedelta(minutes=5)) == (0, 0)
    later = now + parked_statuses.PARK_FOR + timedelta(minutes=1)
    assert await parked_statuses.sweep(sessions, later) == (0, 1)
    assert await _parked(client) == 0


async def test_a_status_redelivered_while_parked_is_kept_once(
    wa: tuple[Client, Recorder],
) -> None:
    client, _ = wa
    for _ in range(3):
        assert (await post(client, status_body("wamid.TWICE", "sent"))).status == 200
    assert await _parked(client) == 1
