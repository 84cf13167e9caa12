"""The service runs the ad loop from its settings: a prospect who writes from a
Click-to-WhatsApp ad (a signed Cloud API webhook with ``referral.ctwa_clid``), is qualified
and moved to won through the JSON API and books through a signed Calendly webhook is
reported to the local Meta Conversions API three times, by the app's own outbox; settings
that are partial stop the start with a message that names them."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import create_app
from bot.channels import build_channels
from bot.channels.subscribers import ConversionsSettingsError, event_subscribers
from bot.http.appkeys import DISPATCHER, SESSIONS
from crm_sync.conversions import CHANNEL, ConversionsSubscriber
from scheduler.pipeline import outbound_events
from scheduler.store.models import Lead, utcnow
from tests.bot.support import AUTH, make_settings
from tests.bot.whatsapp.conftest import APP_SECRET, fixture_bytes, post, settle
from tests.support.fakes.calendly import SIGNING_KEY, load_event, signed
from tests.support.fakes.meta_capi import MetaCapi, running

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]
WABA = "102290129340398"  # the entry id of the webhook bodies


@pytest.fixture
async def meta() -> AsyncIterator[MetaCapi]:
    async with running(MetaCapi()) as fake:
        yield fake
    outbound_events.configure(())  # process-wide: never left to the next test
    outbound_events.subscribe(())


def ad_message_now() -> bytes:
    """Meta's Click-to-WhatsApp webhook body, the click happening now."""
    body = json.loads(fixture_bytes("referral_ad.json"))
    body["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(int(time.time()))
    return json.dumps(body).encode()


async def move(client: TestClient[Any, Any], lead_id: int, *stages: str) -> None:
    for to in stages:
        body = {"to": to, "reason": "test"}
        response = await client.post(f"/api/leads/{lead_id}/transitions", json=body, headers=AUTH)
        assert response.status == 200, await response.text()


async def test_an_ad_lead_that_qualifies_books_and_wins_reaches_meta_three_times(
    engine: AsyncEngine, aiohttp_client: MakeClient, meta: MetaCapi
) -> None:
    settings = make_settings(
        whatsapp_app_secret=APP_SECRET,
        burst_window_ms=20,
        calendly_signing_key=SIGNING_KEY,
        meta_dataset_id=meta.dataset_id,
        whatsapp_waba_id=WABA,
        meta_capi_token=meta.token,
        meta_capi_url=meta.base_url,
    )
    client = await aiohttp_client(create_app(settings, engine=engine, run_scheduler=False))
    assert (await post(client, ad_message_now())).status == 200
    await settle(client)
    async with client.app[SESSIONS]() as db:
        [lead] = (await db.scalars(select(Lead))).all()
    clid = lead.attribution["ctwa_clid"]
    assert lead.attribution["ctwa_clicked_at"]

    await move(client, lead.id, *(["contacted"] if lead.stage == "new" else []), "qualified")
    raw, headers = signed(load_event("invitee_created", token=lead.token))
    assert (await client.post("/webhooks/calendly", data=raw, headers=headers)).status == 200
    await move(client, lead.id, "proposal_sent", "won")
    await client.app[DISPATCHER].deliver_due(utcnow())
    await client.app[DISPATCHER].deliver_due(utcnow())  # a second run sends nothing again

    # Sent concurrently by the outbox: they may arrive in any order.
    assert sorted(e["event_name"] for e in meta.received()) == [
        "InitiateCheckout",
        "LeadSubmitted",
        "Purchase",
    ]
    for event in meta.received():
        assert event["user_data"] == {"whatsapp_business_account_id": WABA, "ctwa_clid": clid}
        assert event["action_source"] == "business_messaging"
        assert event["messaging_channel"] == "whatsapp"
        assert abs(event["event_time"] - time.time()) < 300
    assert len(meta.requests) == 3


def test_partial_settings_are_named_at_start() -> None:
    bad = [
        ({"meta_dataset_id": "123", "meta_capi_token": "t"}, "LEADBOT_WHATSAPP_WABA_ID"),
        ({"meta_dataset_id": "123", "whatsapp_waba_id": "456"}, "LEADBOT_META_CAPI_TOKEN"),
        ({"meta_capi_token": "t"}, "without LEADBOT_META_DATASET_ID"),
        ({"meta_capi_test_event_code": "TEST1"}, "without LEADBOT_META_DATASET_ID"),
        (
            {
                "meta_dataset_id": "1",
                "whatsapp_waba_id": "2",
                "meta_capi_token": "t",
                "meta_capi_url": "ftp://x",
            },
            "LEADBOT_META_CAPI_URL",
        ),
    ]
    try:
        for values, named in bad:
            with pytest.raises(ConversionsSettingsError, match=named):
                build_channels(make_settings(**values))
    finally:
        outbound_events.configure(())
        outbound_events.subscribe(())


def test_the_whatsapp_token_serves_when_no_capi_token_is_set() -> None:
    settings = make_settings(
        meta_dataset_id="123", whatsapp_waba_id="456", whatsapp_token="wa-system-user"
    )
    try:
        channels = build_channels(settings)
        [subscriber] = event_subscribers(settings)
        plain = build_channels(make_settings())
    finally:
        outbound_events.configure(())
        outbound_events.subscribe(())
    assert isinstance(subscriber, ConversionsSubscriber)
    assert subscriber.config.token == "wa-system-user"
    assert CHANNEL in channels
    assert CHANNEL not in plain  # off by default
