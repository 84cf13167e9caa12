"""Lead intake on every backend: normalization, idempotency, races."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scheduler.errors import InvalidLeadError
from scheduler.pipeline.contacts import normalize_email, normalize_phone
from scheduler.pipeline.leads import LeadIn, intake, list_leads, stage_history
from scheduler.store.models import Lead, Stage

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
Sessions = async_sessionmaker[AsyncSession]


async def take(sessions: Sessions, **fields: object) -> tuple[int, bool]:
    async with sessions.begin() as session:
        result = await intake(session, LeadIn.model_validate(fields), default_region="US", now=NOW)
    return result.lead.id, result.created


async def count_leads(sessions: Sessions) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Lead)) or 0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("(415) 555-0123", "+14155550123"),
        ("+1 415-555-0123", "+14155550123"),
        ("972987654321", "+972987654321"),  # WhatsApp's wa_id: digits with country code
        ("0044 20 7946 0958", "+442079460958"),
        ("+44 (0)20 7946 0958", "+442079460958"),
    ],
)
def test_phones_become_e164(raw: str, expected: str) -> None:
    assert normalize_phone(raw, "US") == expected


@pytest.mark.parametrize("raw", ["12", "phone", "+1 555", "", "++"])
def test_bad_phones_are_refused(raw: str) -> None:
    with pytest.raises(InvalidLeadError, match="phone"):
        normalize_phone(raw, "US")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("  Dana@Example.COM ", "dana@example.com"), ("mailto:a.b+c@x.io", "a.b+c@x.io")],
)
def test_emails_are_normalized(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize("raw", ["dana", "dana@", "@x.com", "a b@x.com", "a@b", "a@@b.com"])
def test_bad_emails_are_refused(raw: str) -> None:
    with pytest.raises(InvalidLeadError, match="email"):
        normalize_email(raw)


@given(st.text(max_size=60))
def test_normalizers_raise_only_their_own_error(raw: str) -> None:
    for normalize in (normalize_email, lambda value: normalize_phone(value, "US")):
        with contextlib.suppress(InvalidLeadError):
            normalize(raw)


async def test_same_email_twice_is_one_lead(sessions: Sessions) -> None:
    first = await take(sessions, email="Dana@Example.com", name="Dana")
    second = await take(sessions, email="dana@example.com ")
    assert first == (first[0], True)
    assert second == (first[0], False)
    assert await count_leads(sessions) == 1


async def test_same_phone_in_other_format_is_one_lead(sessions: Sessions) -> None:
    first, _ = await take(sessions, phone="+1 (415) 555-0123")
    second, created = await take(sessions, phone="415.555.0123", email="dana@example.com")
    assert (second, created) == (first, False)
    async with sessions() as session:
        lead = await session.get(Lead, first)
        assert lead is not None
        # The second intake filled in the missing email, never overwrote anything.
        assert (lead.email, lead.phone) == ("dana@example.com", "+14155550123")


async def test_existing_details_are_not_overwritten(sessions: Sessions) -> None:
    lead_id, _ = await take(sessions, email="a@x.com", name="Ann", company="Acme")
    await take(sessions, email="a@x.com", name="Someone Else", role="CTO")
    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
        assert lead is not None
        assert (lead.name, lead.company, lead.role) == ("Ann", "Acme", "CTO")


async def test_a_lead_needs_a_contact(sessions: Sessions) -> None:
    with pytest.raises(InvalidLeadError, match="email or a phone"):
        await take(sessions, name="Nobody")
    assert await count_leads(sessions) == 0


async def test_creation_is_audited_in_stage_new(sessions: Sessions) -> None:
    lead_id, _ = await take(sessions, email="a@x.com", source="form")
    async with sessions() as session:
        history = await stage_history(session, lead_id)
        lead = await session.get(Lead, lead_id)
    assert lead is not None
    assert lead.stage == Stage.NEW
    assert len(lead.token) == 12
    assert [(e.from_stage, e.to_stage, e.actor) for e in history] == [(None, "new", "intake")]


async def test_concurrent_intakes_of_one_person_create_one_lead(sessions: Sessions) -> None:
    results = await asyncio.gather(
        *(take(sessions, email="race@example.com", name=f"n{i}") for i in range(10))
    )
    assert len({lead_id for lead_id, _ in results}) == 1
    assert [created for _, created in results].count(True) == 1
    assert await count_leads(sessions) == 1


async def test_listing_pages_by_id_and_filters_by_stage(sessions: Sessions) -> None:
    ids = [(await take(sessions, email=f"p{i}@x.com"))[0] for i in range(5)]
    async with sessions() as session:
        page1 = await list_leads(session, limit=2)
        page2 = await list_leads(session, after_id=page1[-1].id, limit=2)
        contacted = await list_leads(session, stage=Stage.CONTACTED)
    assert [lead.id for lead in page1 + page2] == ids[:4]
    assert contacted == []


# ---- a person seen on a channel (the WhatsApp inbox's lead) ---------------------------------


async def test_a_person_seen_at_new_points_gets_a_new_lead_and_then_that_lead(
    sessions: Sessions,
) -> None:
    from scheduler.pipeline.identity import Kind, Point, owner_ids
    from scheduler.pipeline.leads import lead_seen_at

    wa = Point(Kind.WHATSAPP, "+14155550123")
    phone = Point(Kind.PHONE, "+14155550123")
    bsuid = Point(Kind.BSUID, "US.123")
    described: list[int] = []

    def describe() -> LeadIn:
        described.append(1)
        return LeadIn(phone="+14155550123", name="Ana", source="whatsapp")

    async def seen(points: list[Point]) -> tuple[int, bool]:
        async with sessions.begin() as session:
            owned = await owner_ids(session, points)
            known = next(iter(owned.values()), None)
            lead, created = await lead_seen_at(
                session,
                points,
                known=known,
                owned=owned,
                describe=describe,
                values={"last_inbound_at": NOW},
                default_region="US",
                now=NOW,
                actor="test",
                reason="seen in a test",
            )
            return lead.id, created

    lead_id, created = await seen([wa, phone])
    assert created and len(described) == 1
    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
        assert lead is not None and lead.name == "Ana" and lead.last_inbound_at is not None
        assert await owner_ids(session, [wa, phone]) == {wa: lead_id, phone: lead_id}
    # Seen again with a BSUID too: the same lead gains it; nothing is described or created.
    again, created = await seen([wa, phone, bsuid])
    assert (again, created) == (lead_id, False) and len(described) == 1
    async with sessions() as session:
        assert (await owner_ids(session, [bsuid])) == {bsuid: lead_id}
    assert await count_leads(sessions) == 1
