"""``POST /webhooks/hubspot`` through the HTTP service on every backend: the v3 signature
checked before anything is parsed, a deal stage change in HubSpot moves the lead through the
stage machine (actor ``hubspot``), an illegal one is recorded and not applied, a retried
event changes nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.app import create_app
from crm_sync.hubspot.signature import SignatureError, sign, verify
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.pipeline.stages import transition
from scheduler.store.engine import session_factory
from scheduler.store.erasure import erase_lead
from scheduler.store.hubspot_sync import record_links
from scheduler.store.models import Lead, LeadNote, OutboxItem, ProcessedEvent, StageEvent
from tests.bot.support import make_settings
from tests.support.fakes.hubspot import reference_signature

Client = TestClient[Any, Any]
NOW = datetime(2026, 5, 4, 11, 0, tzinfo=UTC)
SECRET = "hubspot-client-secret"
PUBLIC = "https://bot.example"
URI = f"{PUBLIC}/webhooks/hubspot"


@pytest.fixture
async def app_client(
    engine: AsyncEngine, aiohttp_client: Callable[..., Awaitable[Client]]
) -> Client:
    settings = make_settings(hubspot_client_secret=SECRET, public_url=PUBLIC)
    return await aiohttp_client(create_app(settings, engine=engine, run_scheduler=False))


@pytest.fixture
def db(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


async def lead_with_deal(db: async_sessionmaker[AsyncSession], deal_id: str) -> int:
    """A contacted lead mirrored to HubSpot deal ``deal_id``."""
    async with db.begin() as session:
        data = LeadIn(name="Jane", email=f"jane{deal_id}@acme.com", source="form")
        lead_id = (await intake(session, data, default_region="US", now=NOW)).lead.id
        await transition(session, lead_id, "contacted", reason=None, actor="t", now=NOW)
        await record_links(session, [(lead_id, "512", deal_id)], NOW)
    return lead_id


def stage_change(event_id: int, deal_id: str, stage: str) -> dict[str, Any]:
    """One event as HubSpot sends it for a deal's ``dealstage`` change."""
    return {
        "eventId": event_id,
        "subscriptionId": 2812,
        "portalId": 62515,
        "appId": 1160452,
        "occurredAt": 1714822953000,
        "subscriptionType": "deal.propertyChange",
        "attemptNumber": 0,
        "objectId": int(deal_id),
        "propertyName": "dealstage",
        "propertyValue": stage,
        "changeSource": "CRM_UI",
        "sourceId": "userId:1234",
    }


async def post(
    client: Client, events: Any, *, secret: str = SECRET, age_ms: int = 0, query: str = ""
) -> Any:
    body = json.dumps(events).encode()
    timestamp = str(int(time.time() * 1000) - age_ms)
    uri = URI + query
    headers = {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": reference_signature(secret, "POST", uri, body, timestamp),
        "X-HubSpot-Request-Timestamp": timestamp,
    }
    return await client.post("/webhooks/hubspot" + query, data=body, headers=headers)


def test_our_signature_is_hubspots() -> None:
    body = b'[{"eventId":1}]'
    ours = sign(SECRET, "POST", URI, body, "1714822953000")
    assert ours == reference_signature(SECRET, "POST", URI, body, "1714822953000")
    escaped = "https://bot.example/webhooks/hubspot?a=b%3Ac"  # HubSpot decodes %3A first
    assert sign(SECRET, "POST", escaped, body, "1") == reference_signature(
        SECRET, "POST", "https://bot.example/webhooks/hubspot?a=b:c", body, "1"
    )
    with pytest.raises(SignatureError) as stale:
        verify(SECRET, method="POST", uri=URI, body=body, signature=ours,
               timestamp="1714822953000", now_ms=1714822953000 + 300_001)  # fmt: skip
    assert stale.value.status == 403


async def test_a_stage_change_in_hubspot_moves_the_lead_once(
    app_client: Client, db: async_sessionmaker[AsyncSession]
) -> None:
    lead_id = await lead_with_deal(db, "9001")

    reply = await post(app_client, [stage_change(101, "9001", "presentationscheduled")])
    again = await post(app_client, [stage_change(101, "9001", "presentationscheduled")])

    assert reply.status == 200
    [outcome] = (await reply.json())["results"]
    assert outcome["status"] == "moved" and outcome["lead_id"] == lead_id
    assert (await again.json())["results"][0]["status"] == "duplicate"
    async with db() as session:
        lead = await session.get(Lead, lead_id)
        moves = (
            await session.scalars(select(StageEvent).where(StageEvent.actor == "hubspot"))
        ).all()
    assert lead is not None and lead.stage == "qualified"
    assert [(m.from_stage, m.to_stage) for m in moves] == [("contacted", "qualified")]


async def test_an_illegal_move_is_recorded_not_applied_and_our_stage_pushed_back(
    app_client: Client, db: async_sessionmaker[AsyncSession]
) -> None:
    lead_id = await lead_with_deal(db, "9002")

    reply = await post(app_client, [stage_change(202, "9002", "closedwon")])  # contacted → won

    [outcome] = (await reply.json())["results"]
    assert outcome["status"] == "illegal"
    async with db() as session:
        lead = await session.get(Lead, lead_id)
        notes = (await session.scalars(select(LeadNote).where(LeadNote.lead_id == lead_id))).all()
        revert = await session.scalar(
            select(OutboxItem).where(OutboxItem.key == f"hubspot:lead:{lead_id}:revert:202")
        )
    assert lead is not None and lead.stage == "contacted"
    assert any("not applied" in n.body and "closedwon" in n.body for n in notes)
    assert revert is not None and revert.channel == "hubspot"


async def test_unknown_deals_erased_leads_and_other_events_change_nothing(
    app_client: Client, db: async_sessionmaker[AsyncSession]
) -> None:
    erased = await lead_with_deal(db, "9005")
    async with db.begin() as session:
        await erase_lead(session, erased, actor="admin", hash_key=b"k" * 32, now=NOW)
    other = stage_change(302, "9003", "closedwon") | {"propertyName": "amount"}
    events = [
        stage_change(301, "4040", "closedwon"),
        other,
        stage_change(303, "9005", "closedlost"),
    ]

    reply = await post(app_client, events)

    statuses = [r["status"] for r in (await reply.json())["results"]]
    assert statuses == ["unknown_deal", "ignored", "ignored"]
    async with db() as session:
        lead = await session.get(Lead, erased)
    assert lead is not None and lead.stage == "contacted"


BAD = {
    "wrong_secret": ("wrong-secret", 0, 403, "bad_signature"),
    "stale": (SECRET, 301_000, 403, "signature_expired"),
}


@pytest.mark.parametrize("case", sorted(BAD))
async def test_a_bad_signature_is_refused_before_parsing(
    app_client: Client, db: async_sessionmaker[AsyncSession], case: str
) -> None:
    secret, age_ms, status, code = BAD[case]
    await lead_with_deal(db, "9004")

    reply = await post(
        app_client, [stage_change(401, "9004", "closedwon")], secret=secret, age_ms=age_ms
    )

    assert reply.status == status
    assert (await reply.json())["error"]["code"] == code
    async with db() as session:
        assert (await session.scalars(select(ProcessedEvent))).all() == []


async def test_missing_headers_and_malformed_bodies_get_json_errors(app_client: Client) -> None:
    unsigned = await app_client.post("/webhooks/hubspot", data=b"{not json")  # 401, not 400
    not_a_list = await post(app_client, {"eventId": 1})

    assert unsigned.status == 401
    assert (await unsigned.json())["error"]["code"] == "signature_missing"
    assert not_a_list.status == 400
    assert (await not_a_list.json())["error"]["code"] == "malformed_events"


async def test_a_timestamp_of_unicode_digits_is_refused_not_a_crash(app_client: Client) -> None:
    reply = await app_client.post(
        "/webhooks/hubspot",
        data=b"[]",
        headers={"X-HubSpot-Signature-v3": "x", "X-HubSpot-Request-Timestamp": "\u00b2"},
    )
    assert reply.status == 401
    assert (await reply.json())["error"]["code"] == "signature_malformed"
