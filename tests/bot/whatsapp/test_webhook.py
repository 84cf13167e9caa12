"""The webhook end to end: status codes, the inbox, one reply per turn, statuses."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from bot.http.appkeys import ENGINE, SESSIONS
from bot.whatsapp.keys import INBOX
from scheduler.store.models import InboxItem, Lead, Message, OutboxItem
from tests.bot.whatsapp.conftest import (
    VERIFY_TOKEN,
    Client,
    MakeClient,
    Recorder,
    count,
    fixture_bytes,
    inbox_rows,
    lead_by_phone,
    post,
    replies,
    settle,
    text_body,
)

DANA = "+972987654321"


# -- verification handshake -------------------------------------------------------------------


async def test_verify_echoes_the_challenge(wa: tuple[Client, Recorder]) -> None:
    client, _ = wa
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    response = await client.get("/webhooks/whatsapp", params=params)
    assert response.status == 200
    assert response.content_type == "text/plain"
    assert await response.text() == "1158201444"


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.challenge": "1"},
    ],
)
async def test_verify_refuses_wrong_tokens(
    wa: tuple[Client, Recorder], params: dict[str, str]
) -> None:
    client, _ = wa
    response = await client.get("/webhooks/whatsapp", params=params)
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "forbidden"


# -- signature and shape: rejected bodies store nothing ----------------------------------------


async def test_missing_signature_is_401_and_stores_nothing(wa: tuple[Client, Recorder]) -> None:
    client, _ = wa
    response = await post(client, fixture_bytes("text.json"), secret=None)
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "signature_missing"
    assert await count(client, InboxItem) == 0


async def test_wrong_signature_is_403_and_stores_nothing(wa: tuple[Client, Recorder]) -> None:
    client, _ = wa
    response = await post(client, fixture_bytes("text.json"), secret="not-the-secret")
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "bad_signature"
    assert await count(client, InboxItem) == 0 and await count(client, Lead) == 0


@pytest.mark.parametrize(
    "name",
    [
        "malformed_not_json.txt",
        "malformed_array.json",
        "malformed_entry_not_list.json",
        "malformed_message_no_id.json",
        "malformed_bad_timestamp.json",
    ],
)
async def test_malformed_body_is_400_and_stores_nothing(
    wa: tuple[Client, Recorder], name: str
) -> None:
    client, _ = wa
    response = await post(client, fixture_bytes(name))
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "malformed_webhook"
    assert await count(client, InboxItem) == 0


async def test_unsigned_bodies_are_accepted_in_embedded_mode_without_a_secret(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = await make_client(whatsapp_app_secret="")
    if client.app[ENGINE].dialect.name != "sqlite":
        pytest.skip("embedded mode is SQLite")
    with caplog.at_level(logging.WARNING, logger="leadbot.whatsapp"):
        for wamid in ("wamid.U1", "wamid.U2"):
            response = await post(client, text_body("14155550100", wamid, "hi"), secret=None)
            assert response.status == 200
    assert sum("UNSIGNED" in r.getMessage() for r in caplog.records) == 1  # warned once
    await settle(client)
    assert await count(client, InboxItem) == 2


async def test_unsigned_bodies_are_refused_when_a_real_channel_is_configured(
    make_client: MakeClient,
) -> None:
    """Embedded (SQLite) mode with a WhatsApp token: an unsigned body once made a lead and
    a message to a real number. Only the sandbox channel may take unsigned bodies."""
    client, _ = await make_client(
        whatsapp_app_secret="", whatsapp_token="real-token", whatsapp_phone_id="106540352242922"
    )
    response = await post(client, text_body("14155550100", "wamid.U1", "hi"), secret=None)
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "not_configured"
    assert await count(client, InboxItem) == 0


# -- the inbox: exactly-once handling ---------------------------------------------------------


async def test_a_text_gets_one_reply_and_creates_the_lead(wa: tuple[Client, Recorder]) -> None:
    client, recorder = wa
    response = await post(client, fixture_bytes("text.json"))
    assert response.status == 200
    await settle(client)
    (reply,) = await replies(client, DANA)
    assert reply["kind"] == "list" and reply["text"].startswith("Hi!")
    assert reply["_key"] == "wa:wamid.HBgMOTcyOTg3NjU0MzIxFQIAEhgUM0FBMTExAA==:0"
    assert reply["_state"] == "sent"  # delivered through the stored channel after the commit
    lead = await lead_by_phone(client, DANA)
    assert lead is not None and lead.name == "Dana" and lead.stage == "contacted"
    assert lead.source == "unknown" and lead.attribution == {"channel": "whatsapp"}
    assert lead.last_inbound_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    # The reply carries the 24-hour window, so the channel needs no lookup to send it.
    assert reply["window_until"] == "2023-11-15T22:13:20+00:00"
    async with client.app[SESSIONS]() as db:
        incoming = await db.scalars(Message.__table__.select().where(Message.direction == "in"))
        assert len(list(incoming)) == 1
    assert recorder.cancelled == []  # a lead made by this turn has no follow-ups to cancel
    rows = await inbox_rows(client)
    assert len(rows) == 1 and rows[0].processed_at is not None and rows[0].error is None
    # Their next message stops whatever cadence the lead is on.
    response = await post(client, text_body(DANA.lstrip("+"), "wamid.AGAIN", "hello?"))
    assert response.status == 200
    await settle(client)
    assert recorder.cancelled == [(lead.id, "prospect replied")]


async def test_duplicates_store_one_row_and_send_one_reply(wa: tuple[Client, Recorder]) -> None:
    client, _ = wa
    body = fixture_bytes("text.json")
    for _ in range(5):
        assert (await post(client, body)).status == 200
        await settle(client)
    assert await count(client, InboxItem) == 1
    assert len(await replies(client, DANA)) == 1


async def test_duplicates_racing_each_other(wa: tuple[Client, Recorder]) -> None:
    client, _ = wa
    body = fixture_bytes("text.json")
    statuses = await asyncio.gather(*(post(client, body) for _ in range(5)))
    assert [r.status for r in statuses] == [200] * 5
    await settle(client)
    assert await count(client, InboxItem) == 1
    assert len(await replies(client, DANA)) == 1


async def test_stopping_the_service_gives_the_inbox_writers_connection_back(
    wa: tuple[Client, Recorder],
) -> None:
    client, _ = wa
    engine = client.app[ENGINE]
    assert (await post(client, fixture_bytes("text.json"))).status == 200
    await settle(client)

    await client.close()

    assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_a_batch_of_three_people_is_three_conversations(wa: tuple[Client, Recorder]) -> None:
    client, _ = wa
    assert (await post(client, fixture_bytes("batched_three_people.json"))).status == 200
    await settle(client)
    for phone in ("+14155550101", "+14155550102", "+14155550103"):
        assert len(await replies(client, phone)) == 1, phone
        assert await lead_by_phone(client, phone) is not None
    assert await count(client, Lead) == 3
    # Their bursts ended together: their turns shared one load, one commit, one delivery.
    assert client.app[INBOX].stats.turns == 3
    assert client.app[INBOX].stats.commits == 1


async def test_a_burst_of_three_messages_gets_one_coherent_reply(make_client: MakeClient) -> None:
    client, _ = await make_client(burst_window_ms=400)
    phone = "14155550142"
    parts = ["hi", "we need a new website", "about 40 people"]
    for i, text in enumerate(parts):
        assert (await post(client, text_body(phone, f"wamid.BURST{i}", text))).status == 200
    await settle(client)
    (reply,) = await replies(client, f"+{phone}")
    # Both answers of the burst were understood: the next open question is the budget.
    assert "budget" in reply["text"].lower()
    assert reply["_key"] == "wa:wamid.BURST0:0"


async def test_unknown_types_get_a_polite_answer(wa: tuple[Client, Recorder]) -> None:
    client, _ = wa
    for name in ("unsupported.json", "unknown_type.json"):
        assert (await post(client, fixture_bytes(name))).status == 200
        await settle(client)
    texts = [r["text"] for r in await replies(client, DANA)]
    assert len(texts) == 2
    assert all("I can only read text" in t for t in texts)


async def test_media_gets_the_text_only_answer_and_a_reaction_gets_nothing(
    wa: tuple[Client, Recorder],
) -> None:
    client, _ = wa
    assert (await post(client, fixture_bytes("audio.json"))).status == 200
    await settle(client)
    assert (await post(client, fixture_bytes("reaction.json"))).status == 200
    await settle(client)
    (reply,) = await replies(client, DANA)
    assert "I can only read text" in reply["text"]


async def test_edits_are_ignored(wa: tuple[Client, Recorder]) -> None:
    client, _ = wa
    assert (await post(client, fixture_bytes("edit.json"))).status == 200
    await settle(client)
    assert await count(client, InboxItem) == 0 and await count(client, Lead) == 0


async def test_bsuid_only_sender_becomes_a_lead_and_is_answered(
    wa: tuple[Client, Recorder],
) -> None:
    client, _ = wa
    assert (await post(client, fixture_bytes("bsuid_only.json"))).status == 200
    await settle(client)
    (row,) = await inbox_rows(client)
    assert row.sender == "bsuid:US.13491208655302741918" and row.processed_at is not None
    async with client.app[SESSIONS]() as db:
        (lead,) = await db.scalars(select(Lead))
        (inbound,) = await db.scalars(select(Message).where(Message.direction == "in"))
    assert inbound.lead_id == lead.id and lead.phone is None
    (reply,) = await replies(client, "US.13491208655302741918")  # the BSUID is the address
    assert reply["text"]


async def test_click_to_whatsapp_ad_is_the_lead_source(wa: tuple[Client, Recorder]) -> None:
    client, _ = wa
    assert (await post(client, fixture_bytes("referral_ad.json"))).status == 200
    await settle(client)
    lead = await lead_by_phone(client, DANA)
    assert lead is not None and lead.source == "ctwa_ad"
    assert lead.attribution["ad_source_id"] == "120210000000000"
    assert lead.attribution["ctwa_clid"].startswith("ARAk")


async def test_stop_opts_out_and_nothing_is_ever_sent_again(wa: tuple[Client, Recorder]) -> None:
    client, _ = wa
    phone = "14155550150"
    for i, text in enumerate(["hi", "STOP", "hello?", "are you there"]):
        assert (await post(client, text_body(phone, f"wamid.STOP{i}", text))).status == 200
        await settle(client)
    sent = await replies(client, f"+{phone}")
    assert len(sent) == 2 and "won't hear from us" in sent[1]["text"]
    lead = await lead_by_phone(client, f"+{phone}")
    assert lead is not None and lead.opted_out_at is not None
    from scheduler.store.suppressions import find_suppression

    async with client.app[SESSIONS]() as db:
        assert await find_suppression(db, f"+{phone}") is not None
        assert (
            await db.scalar(
                Message.__table__.select()
                .with_only_columns(Message.id)
                .where(Message.external_id == "wamid.STOP3")
            )
            is not None
        )


async def test_asking_for_a_human_pauses_the_bot(wa: tuple[Client, Recorder]) -> None:
    client, recorder = wa
    phone = "14155550160"
    for i, text in enumerate(["hi", "can I talk to a human please", "hello?"]):
        assert (await post(client, text_body(phone, f"wamid.HUM{i}", text))).status == 200
        await settle(client)
    sent = await replies(client, f"+{phone}")
    assert len(sent) == 2
    lead = await lead_by_phone(client, f"+{phone}")
    assert lead is not None and lead.bot_paused
    assert [kind for _, kind, _ in recorder.notified] == ["handoff"]


# -- statuses ---------------------------------------------------------------------------------


async def _sent_row(client: Client, wamid: str, lead_id: int | None = None) -> int:
    async with client.app[SESSIONS].begin() as db:
        item = OutboxItem(
            key=f"test:{wamid}",
            channel="whatsapp",
            recipient=DANA,
            payload={"kind": "text", "text": "x"},
            state="sent",
            external_id=wamid,
            lead_id=lead_id,
        )
        db.add(item)
        await db.flush()
        return item.id


async def test_statuses_update_the_outbox_and_never_go_backwards(
    wa: tuple[Client, Recorder],
) -> None:
    client, _ = wa
    item_id = await _sent_row(client, "wamid.OUT2")
    for name in ("status_read.json", "status_delivered.json"):  # out of order, as Meta does
        assert (await post(client, fixture_bytes(name))).status == 200
    async with client.app[SESSIONS]() as db:
        item = await db.get(OutboxItem, item_id)
        assert item is not None and item.delivery_status == "read"
    assert await count(client, InboxItem) == 0


async def test_failed_131047_records_the_closed_window(wa: tuple[Client, Recorder]) -> None:
    client, _ = wa
    assert (await post(client, fixture_bytes("text.json"))).status == 200
    await settle(client)
    lead = await lead_by_phone(client, DANA)
    assert lead is not None
    item_id = await _sent_row(client, "wamid.OUT1", lead.id)
    assert (await post(client, fixture_bytes("status_failed_131047.json"))).status == 200
    async with client.app[SESSIONS]() as db:
        item = await db.get(OutboxItem, item_id)
        assert item is not None and item.delivery_status == "failed"
        assert item.error is not None and "131047" in item.error
        fresh = await db.get(Lead, lead.id)
        assert fresh is not None
        assert fresh.whatsapp_window_closed_at == datetime.fromtimestamp(1700090000, UTC)
    # Writing again reopens the window.
    assert (
        await post(client, text_body("972987654321", "wamid.AGAIN", "hi", ts=1700095000))
    ).status == 200
    await settle(client)
    refreshed = await lead_by_phone(client, DANA)
    assert refreshed is not None and refreshed.whatsapp_window_closed_at is None


async def test_a_batch_of_known_people_reads_their_leads_once_in_its_commit(
    wa: tuple[Client, Recorder],
) -> None:
    from sqlalchemy import event

    client, _ = wa
    first = fixture_bytes("batched_three_people.json")
    assert (await post(client, first)).status == 200
    await settle(client)
    # The same three people write again, together: one more batch of three known leads.
    assert (await post(client, first.replace(b"wamid.", b"wamid.AGAIN"))).status == 200
    processor = client.app[INBOX]
    committing: list[bool] = []
    statements: list[str] = []
    commit_many = processor._commits.run_many

    async def watched(turns: list[Any]) -> Any:
        committing.append(True)
        try:
            return await commit_many(turns)
        finally:
            committing.pop()

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        if committing:
            statements.append(statement)

    processor._commits.run_many = watched
    engine = client.app[ENGINE].sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        await settle(client)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert processor.stats.turns == 6 and processor.stats.commits == 2
    # The commit reads the batch's leads once (id IN ...; Postgres locks them first, in
    # one statement too), never once per turn (id = ?).
    reads = [s for s in statements if s.lstrip().startswith("SELECT") and "FROM leads" in s]
    assert reads and all("leads.id IN" in s for s in reads), reads
    assert len(reads) <= 2
