"""What people's phones put in WhatsApp webhooks: stored, answered, never a failed turn.

NUL in a text made the turn fail on PostgreSQL until it was given up (no reply); a wamid
longer than 255 characters failed the insert.
"""

from __future__ import annotations

import json

from sqlalchemy import select

from bot.http.appkeys import SESSIONS
from scheduler.store.models import InboxItem, Message
from tests.bot.whatsapp.conftest import (
    Client,
    Recorder,
    count,
    inbox_rows,
    lead_by_phone,
    post,
    replies,
    settle,
    text_body,
)

PHONE = "+14155550142"


async def test_nul_in_text_and_name_is_dropped_and_the_prospect_answered(
    wa: tuple[Client, Recorder],
) -> None:
    client, _ = wa
    body = text_body(PHONE[1:], "wamid.NUL1", "hi\x00 there", name="Da\x00na")
    assert (await post(client, body)).status == 200
    await settle(client)
    [row] = await inbox_rows(client)
    assert row.processed_at is not None and row.error is None and row.attempts <= 1
    assert "\x00" not in json.dumps(row.payload) and row.payload["text"] == "hi there"
    lead = await lead_by_phone(client, PHONE)
    assert lead is not None and lead.name == "Dana"
    assert len(await replies(client, PHONE)) == 1


async def test_a_lone_surrogate_in_a_profile_name_is_replaced(
    wa: tuple[Client, Recorder],
) -> None:
    client, _ = wa
    raw = text_body(PHONE[1:], "wamid.SUR1", "hi", name="Ana \ud83d")  # json escapes it
    assert b"\\ud83d" in raw
    assert (await post(client, raw)).status == 200
    await settle(client)
    lead = await lead_by_phone(client, PHONE)
    assert lead is not None and lead.name == "Ana \ufffd"
    assert len(await replies(client, PHONE)) == 1


async def test_a_long_wamid_is_stored_whole_and_answered(wa: tuple[Client, Recorder]) -> None:
    client, _ = wa
    wamid = "wamid." + "H" * 1000
    assert (await post(client, text_body(PHONE[1:], wamid, "hi"))).status == 200
    await settle(client)
    [row] = await inbox_rows(client)
    assert row.external_id == wamid and row.error is None
    async with client.app[SESSIONS]() as db:
        stored = await db.scalar(select(Message.external_id).where(Message.direction == "in"))
    assert stored == wamid
    [reply] = await replies(client, PHONE)
    assert reply["_key"].startswith(f"wa:{wamid}")


async def test_ids_no_column_holds_are_a_400_and_store_nothing(
    wa: tuple[Client, Recorder],
) -> None:
    client, _ = wa
    for body in (
        text_body(PHONE[1:], "wamid." + "H" * 1100, "hi"),
        text_body("1" * 400, "wamid.LONGSENDER", "hi"),
    ):
        response = await post(client, body)
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "malformed_webhook"
    assert await count(client, InboxItem) == 0
