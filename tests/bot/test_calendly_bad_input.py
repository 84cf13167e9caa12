"""``POST /webhooks/calendly`` with what invitees type: always a 2xx once signed, never 500.

A 500 makes Calendly retry for 24 h and then disable the subscription (no more bookings
reach the pipeline). Fields that do not fit are cut or dropped and the booking is kept; a
body that cannot be used at all is recorded with its reason and acknowledged.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.app import create_app
from scheduler.store.engine import session_factory
from scheduler.store.models import Booking, Lead, ProcessedEvent
from tests.bot.support import make_settings
from tests.support.fakes.calendly import SIGNING_KEY, load_event, signature, signed

Client = TestClient[Any, Any]
UNUSABLE = "calendly:unusable"  # bot.calendly.webhook.UNUSABLE, the source of unusable events
Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def client(engine: AsyncEngine, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    settings = make_settings(calendly_signing_key=SIGNING_KEY)
    return await aiohttp_client(create_app(settings, engine=engine, run_scheduler=False))


@pytest.fixture
def db(engine: AsyncEngine) -> Sessions:
    return session_factory(engine)


_counter = iter(range(10**9))


def event(name: str = "invitee_created", **payload: Any) -> dict[str, Any]:
    """A realistic event of a new invitee (a fresh URI and email), ``payload`` overridden."""
    n = next(_counter)
    body = load_event(name, email=f"invitee{n}@acme.com")
    body["payload"]["uri"] = f"https://api.calendly.com/scheduled_events/EVT/invitees/I{n}"
    body["payload"].update(payload)
    return body


async def post(client: Client, body: dict[str, Any]) -> tuple[int, Any]:
    raw, headers = signed(body)
    response = await client.post("/webhooks/calendly", data=raw, headers=headers)
    return response.status, await response.json()


async def booking(db: Sessions, uri: str) -> tuple[Booking, Lead | None]:
    async with db() as session:
        found = await session.scalar(select(Booking).where(Booking.invitee_uri == uri))
        assert found is not None, uri
        lead = await session.get(Lead, found.lead_id) if found.lead_id else None
    return found, lead


async def unusable(db: Sessions) -> list[str]:
    async with db() as session:
        rows = await session.scalars(
            select(ProcessedEvent.key).where(ProcessedEvent.source == UNUSABLE)
        )
        return list(rows)


# (fields the invitee sent, the lead's name and time zone they give)
FIELD_CASES: list[tuple[dict[str, Any], str | None, str | None]] = [
    ({"name": "N" * 300}, "N" * 200, "America/New_York"),
    ({"name": "Ana \ud83d"}, "Ana \ufffd", "America/New_York"),  # a lone surrogate
    ({"name": "Ana\x00 Bel"}, "Ana Bel", "America/New_York"),
    ({"name": 12345}, None, "America/New_York"),
    ({"name": {"first": "Ana"}}, None, "America/New_York"),
    ({"timezone": "T" * 100}, "Jane Doe", None),
    ({"timezone": 3600}, "Jane Doe", None),
    ({"timezone": "Not/AZone"}, "Jane Doe", None),
    ({"timezone": "Europe/Paris\x00"}, "Jane Doe", "Europe/Paris"),
    ({"timezone": ["UTC"]}, "Jane Doe", None),
    ({"questions_and_answers": "size?"}, "Jane Doe", "America/New_York"),
    ({"questions_and_answers": 42}, "Jane Doe", "America/New_York"),
    ({"questions_and_answers": {"q": "a"}}, "Jane Doe", "America/New_York"),
    (
        {"questions_and_answers": [1, None, {"question": 5, "answer": ["x"]}]},
        "Jane Doe",
        "America/New_York",
    ),
    (
        {"questions_and_answers": [{"question": "Q\x00", "answer": "A" * 10_000}]},
        "Jane Doe",
        "America/New_York",
    ),
    ({"scheduled_event": "EVT"}, "Jane Doe", "America/New_York"),
    (
        {"scheduled_event": {"uri": "u" * 1000, "location": ["x"], "start_time": 5}},
        "Jane Doe",
        "America/New_York",
    ),
    ({"tracking": {"utm_content": "t" * 5000}}, "Jane Doe", "America/New_York"),
    ({"email": "jane\x00@acme.com"}, "Jane Doe", "America/New_York"),
]


async def test_invitee_fields_that_do_not_fit_keep_the_booking(
    client: Client, db: Sessions
) -> None:
    for fields, name, timezone in FIELD_CASES:
        body = event(timezone="America/New_York")
        body["payload"].update(fields)
        status, answer = await post(client, body)
        assert (status, answer["status"]) == (200, "processed"), (fields, answer)
        stored, lead = await booking(db, body["payload"]["uri"])
        assert stored.status == "active" and stored.timezone == timezone, fields
        assert lead is not None and lead.booked_at is not None, fields
        assert (lead.name, lead.timezone) == (name, timezone), fields


async def test_an_event_without_a_usable_invitee_uri_is_recorded_and_acknowledged(
    client: Client, db: Sessions
) -> None:
    payloads: list[dict[str, Any]] = [
        {"uri": "https://api.calendly.com/x/" + "u" * 600},
        {"uri": 12345},
        {"uri": ["https://api.calendly.com/x"]},
        {"uri": None},
    ]
    for n, payload in enumerate(payloads, 1):
        status, answer = await post(client, event(**payload))
        assert (status, answer["status"]) == (200, "unusable"), answer
        assert "payload.uri" in answer["reason"]
        keys = await unusable(db)
        assert len(keys) == n and all("payload.uri" in key for key in keys)
    async with db() as session:
        assert await session.scalar(select(Booking.id)) is None


UNREADABLE = [
    b'{"event": "invitee.created", "payload": ',
    b'{"event": "invitee.created", "payload": {"uri": "x", "n": ' + b"9" * 5000 + b"}}",
    b'{"event": "invitee.created", "payload": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
    b'["invitee.created"]',
    b'{"event": "invitee.created", "payload": "x"}',
]


async def test_a_signed_body_we_cannot_read_is_recorded_and_acknowledged(
    client: Client, db: Sessions
) -> None:
    for n, raw in enumerate(UNREADABLE, 1):
        headers = {"Calendly-Webhook-Signature": signature(raw)}
        response = await client.post("/webhooks/calendly", data=raw, headers=headers)
        assert response.status == 200, await response.text()
        assert (await response.json())["status"] == "unusable"
        assert len(await unusable(db)) == n
        # Calendly's retry of the same body is acknowledged again and recorded once.
        response = await client.post("/webhooks/calendly", data=raw, headers=headers)
        assert response.status == 200 and len(await unusable(db)) == n


# Any code point, and often the ones that broke storage: NUL, lone surrogates.
_char = st.characters(exclude_categories=()) | st.sampled_from(["\x00", "\ud800", "\udfff"])
_text = st.text(_char, max_size=300)
_junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=10,
)
_FIELDS = (
    "name",
    "email",
    "timezone",
    "questions_and_answers",
    "scheduled_event",
    "tracking",
    "cancellation",
    "rescheduled",
    "old_invitee",
    "first_name",
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(["invitee_created", "invitee_canceled"]),
    fields=st.dictionaries(st.sampled_from(_FIELDS), _junk, min_size=1, max_size=4),
)
async def test_any_invitee_fields_get_a_2xx(
    client: Client, kind: str, fields: dict[str, Any]
) -> None:
    body = event(kind)
    original = copy.deepcopy(body)
    body["payload"].update(fields)
    status, answer = await post(client, body)
    assert status == 200, (fields, answer)
    assert answer["status"] == "processed", answer  # the URI is fine: the booking is kept
    assert original["payload"]["uri"] == body["payload"]["uri"]
