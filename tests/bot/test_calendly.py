"""``POST /webhooks/calendly`` through the HTTP service on every backend: the signature,
bookings created and canceled, reschedules, duplicates, unknown events and leads."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.app import create_app
from bot.calendly.webhook import sign, verify
from bot.http.errors import WebhookSignatureError
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.pipeline.stages import transition
from scheduler.store.engine import session_factory
from scheduler.store.models import Booking, Lead, OutboxItem, ProcessedEvent, StageEvent, Touch
from scheduler.store.reps import add_rep
from tests.bot.support import make_settings
from tests.support.fakes.calendly import SIGNING_KEY, load_event, signature, signed

Client = TestClient[Any, Any]
NOW = datetime(2026, 5, 4, 11, 0, tzinfo=UTC)


def test_the_reference_test_vector() -> None:
    body = b'{"event":"invitee.created","payload":{"email":"jane@example.org"}}'
    header = "t=1700000000,v1=499634d35752530498c3d307ea7ac9140a4d456289c2db8df03c772b247e2f64"

    assert sign("test-signing-key", body, 1700000000) == header
    verify("test-signing-key", body, header, now=1700000000 + 179)
    with pytest.raises(WebhookSignatureError) as stale:
        verify("test-signing-key", body, header, now=1700000000 + 181)
    assert stale.value.status == 403
    with pytest.raises(WebhookSignatureError) as tampered:
        verify("test-signing-key", body.replace(b"jane", b"john"), header, now=1700000000)
    assert tampered.value.code == "bad_signature"


@pytest.fixture
async def app_client(
    engine: AsyncEngine, aiohttp_client: Callable[..., Awaitable[Client]]
) -> Client:
    settings = make_settings(calendly_signing_key=SIGNING_KEY)
    return await aiohttp_client(create_app(settings, engine=engine, run_scheduler=False))


@pytest.fixture
def db(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


async def make_lead(db: async_sessionmaker[AsyncSession], **fields: Any) -> Lead:
    """A contacted lead with a pending follow-up touch, and one active rep."""
    async with db.begin() as session:
        data = {"name": "Jane Doe", "email": "jane.d@acme.com", "company": "Acme"} | fields
        lead = (await intake(session, LeadIn(**data), default_region="US", now=NOW)).lead
        await transition(session, lead.id, "contacted", reason=None, actor="test", now=NOW)
        session.add(
            Touch(
                lead_id=lead.id,
                sequence="default",
                step="day1",
                channel="email",
                due_at=NOW + timedelta(days=1),
                status="pending",
            )
        )
        await add_rep(session, name="Ana", email="ana@seller.com", whatsapp=None, now=NOW)
    return lead


async def post(client: Client, body: dict[str, Any], **sign_options: Any) -> tuple[int, Any]:
    raw, headers = signed(body, **sign_options)
    response = await client.post("/webhooks/calendly", data=raw, headers=headers)
    return response.status, await response.json()


async def counts(db: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with db() as session:
        return {
            table.__tablename__: await session.scalar(select(func.count()).select_from(table)) or 0
            for table in (Booking, ProcessedEvent, OutboxItem, Lead)
        }


async def lead_state(db: async_sessionmaker[AsyncSession], lead_id: int) -> Lead:
    async with db() as session:
        lead = await session.get(Lead, lead_id)
    assert lead is not None
    return lead


async def touches(db: async_sessionmaker[AsyncSession], lead_id: int) -> list[tuple[str, str]]:
    async with db() as session:
        rows = await session.execute(
            select(Touch.sequence, Touch.status).where(Touch.lead_id == lead_id).order_by(Touch.id)
        )
    return [(r.sequence, r.status) for r in rows]


async def rep_mail(db: async_sessionmaker[AsyncSession]) -> list[dict[str, Any]]:
    async with db() as session:
        rows = await session.scalars(
            select(OutboxItem).where(OutboxItem.channel == "email").order_by(OutboxItem.id)
        )
        return [{"to": r.recipient, "key": r.key, **r.payload} for r in rows]


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "signature_missing"),
        ({"Calendly-Webhook-Signature": "v1=abc"}, 401, "signature_malformed"),
        ({"Calendly-Webhook-Signature": "t=now,v1=abc"}, 401, "signature_malformed"),
    ],
)
async def test_unsigned_bodies_are_refused_and_store_nothing(
    app_client: Client,
    db: async_sessionmaker[AsyncSession],
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    raw, _ = signed(load_event("invitee_created", email="x@y.com"))
    response = await app_client.post("/webhooks/calendly", data=raw, headers=headers)

    assert response.status == status
    assert (await response.json())["error"]["code"] == code
    assert (await counts(db))["processed_events"] == 0


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"key": "another-key"}, "bad_signature"),
        ({"age": 190}, "signature_expired"),
        ({"age": -190}, "signature_expired"),
    ],
    ids=["wrong key", "older than 180 s", "from the future"],
)
async def test_a_wrong_or_stale_signature_is_forbidden(
    app_client: Client, db: async_sessionmaker[AsyncSession], options: dict[str, Any], code: str
) -> None:
    if "age" in options:
        options = {"timestamp": int(time.time()) - options["age"]}
    status, body = await post(app_client, load_event("invitee_created"), **options)

    assert (status, body["error"]["code"]) == (403, code)
    assert await counts(db) == {"bookings": 0, "processed_events": 0, "outbox": 0, "leads": 0}


async def test_a_body_changed_after_signing_is_forbidden(app_client: Client) -> None:
    raw, headers = signed(load_event("invitee_created"))
    tampered = raw.replace(b"Jane Doe", b"Eve Doe")
    response = await app_client.post("/webhooks/calendly", data=tampered, headers=headers)

    assert response.status == 403


async def test_signed_garbage_is_acknowledged_as_unusable(app_client: Client) -> None:
    """Signed, so it is Calendly's: a non-2xx would only make it retry for 24 h and then
    disable the subscription (tests/bot/test_calendly_bad_input.py has the rest)."""
    raw = b'{"event": "invitee.created", "payload": '
    headers = {"Calendly-Webhook-Signature": signature(raw)}
    response = await app_client.post("/webhooks/calendly", data=raw, headers=headers)

    assert response.status == 200
    assert (await response.json())["status"] == "unusable"


async def test_a_booking_by_the_lead_token_is_recorded_once(
    app_client: Client, db: async_sessionmaker[AsyncSession]
) -> None:
    lead = await make_lead(db)
    body = load_event("invitee_created", token=lead.token)

    status, answer = await post(app_client, body)

    assert (status, answer) == (200, {"status": "processed", "lead_id": lead.id})
    async with db() as session:
        booking = await session.scalar(select(Booking))
        history = (
            await session.scalars(select(StageEvent.to_stage).order_by(StageEvent.id))
        ).all()
    assert booking is not None and booking.lead_id == lead.id and booking.status == "active"
    assert booking.invitee_uri == body["payload"]["uri"]
    assert booking.start_time == datetime(2026, 5, 8, 10, 30, tzinfo=UTC)
    after = await lead_state(db, lead.id)
    assert after.booked_at is not None and after.stage == "qualified"
    assert history[-1] == "qualified"
    assert await touches(db, lead.id) == [("default", "cancelled")]
    [mail] = await rep_mail(db)
    assert mail["to"] == "ana@seller.com"
    assert mail["subject"] == "[leadbot] Call booked: Jane Doe (Acme)"
    assert "Call booked for 2026-05-08 10:30 UTC" in mail["text"]
    assert "Company size?: 50-200 staff" in mail["text"]

    before = await counts(db)
    assert await post(app_client, body) == (200, {"status": "duplicate", "lead_id": None})
    assert await counts(db) == before


async def test_the_email_matches_when_the_token_does_not(
    app_client: Client, db: async_sessionmaker[AsyncSession]
) -> None:
    lead = await make_lead(db)
    body = load_event("invitee_created", token="not-a-token", email="JANE.D@acme.com")

    assert (await post(app_client, body))[1]["lead_id"] == lead.id


async def test_an_unknown_invitee_becomes_a_lead(
    app_client: Client, db: async_sessionmaker[AsyncSession]
) -> None:
    async with db.begin() as session:
        await add_rep(session, name="Ana", email="ana@seller.com", whatsapp=None, now=NOW)

    status, answer = await post(app_client, load_event("invitee_created", token=None))

    assert status == 200
    lead = await lead_state(db, answer["lead_id"])
    assert (lead.email, lead.name, lead.source) == ("jane@acme.com", "Jane Doe", "calendly")
    assert lead.booked_at is not None and lead.owner_rep_id is not None


async def test_a_cancellation_tells_the_rep_and_starts_the_rebook_nudge(
    app_client: Client, db: async_sessionmaker[AsyncSession]
) -> None:
    lead = await make_lead(db)
    await post(app_client, load_event("invitee_created", token=lead.token))

    status, answer = await post(app_client, load_event("invitee_canceled", token=lead.token))

    assert (status, answer["status"]) == (200, "processed")
    async with db() as session:
        booking = await session.scalar(select(Booking))
    assert booking is not None and booking.status == "canceled" and booking.canceled_at
    assert (await lead_state(db, lead.id)).booked_at is None
    mails = await rep_mail(db)
    assert [m["subject"].split(":")[0] for m in mails] == [
        "[leadbot] Call booked",
        "[leadbot] Call canceled",
    ]
    assert "Conflict with another meeting" in mails[1]["text"]
    assert [s for s, status in await touches(db, lead.id) if status == "pending"] == [
        "rebook",
        "rebook",
    ]
    before = await counts(db)
    assert (await post(app_client, load_event("invitee_canceled", token=lead.token)))[1][
        "status"
    ] == "duplicate"
    assert await counts(db) == before


async def test_each_canceled_booking_gets_its_own_rebook_nudge(
    app_client: Client, db: async_sessionmaker[AsyncSession]
) -> None:
    lead = await make_lead(db)
    for n in range(2):
        created = load_event("invitee_created", token=lead.token)
        canceled = load_event("invitee_canceled", token=lead.token)
        for body in (created, canceled):  # a second, distinct booking the second time
            body["payload"]["uri"] = f"{body['payload']['uri']}-{n}"
            assert (await post(app_client, body))[1]["status"] == "processed"
    # The second booking cancelled the first nudge; the second cancellation starts its own.
    rebook = [status for s, status in await touches(db, lead.id) if s == "rebook"]
    assert rebook == ["cancelled", "cancelled", "pending", "pending"]


async def test_a_reschedule_moves_the_booking_without_a_rebook_nudge(
    app_client: Client, db: async_sessionmaker[AsyncSession]
) -> None:
    lead = await make_lead(db)
    await post(app_client, load_event("invitee_created", token=lead.token))

    await post(app_client, load_event("reschedule_canceled", token=lead.token))
    await post(app_client, load_event("reschedule_created", token=lead.token))

    async with db() as session:
        bookings = (await session.scalars(select(Booking).order_by(Booking.id))).all()
    assert [b.status for b in bookings] == ["canceled", "active"]
    assert (await lead_state(db, lead.id)).booked_at is not None
    mails = await rep_mail(db)
    assert len(mails) == 2
    assert "Call rescheduled to 2026-05-11 14:00 UTC" in mails[1]["text"]
    assert all(sequence != "rebook" for sequence, _ in await touches(db, lead.id))


async def test_a_late_created_does_not_revive_a_canceled_booking(
    app_client: Client, db: async_sessionmaker[AsyncSession]
) -> None:
    lead = await make_lead(db)
    await post(app_client, load_event("invitee_canceled", token=lead.token))
    await post(app_client, load_event("invitee_created", token=lead.token))

    async with db() as session:
        booking = await session.scalar(select(Booking))
    assert booking is not None and booking.status == "canceled"
    assert (await lead_state(db, lead.id)).booked_at is None


@pytest.mark.parametrize("name", ["invitee_no_show_created", "routing_form_submission_created"])
async def test_other_events_are_acknowledged_and_change_nothing(
    app_client: Client, db: async_sessionmaker[AsyncSession], name: str
) -> None:
    assert await post(app_client, load_event(name)) == (
        200,
        {"status": "ignored", "lead_id": None},
    )
    assert await counts(db) == {"bookings": 0, "processed_events": 0, "outbox": 0, "leads": 0}


async def test_without_a_signing_key_the_endpoint_refuses(
    engine: AsyncEngine, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    client = await aiohttp_client(create_app(make_settings(), engine=engine, run_scheduler=False))
    raw, headers = signed(load_event("invitee_created"))

    response = await client.post("/webhooks/calendly", data=raw, headers=headers)

    assert response.status == 503
