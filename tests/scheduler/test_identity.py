"""One person, one lead (issue 12 item 7): intake matches on any contact point, adds new ones
with an audit event, records conflicts instead of dropping data, and never merges two people
who share a switchboard phone but have different emails."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from scheduler.followups.gates import load_facts
from scheduler.pipeline.identity import Kind, Point, points_for_lead
from scheduler.pipeline.leads import IntakeResult, LeadIn, intake
from scheduler.store.engine import session_factory
from scheduler.store.migrate import alembic_config, upgrade
from scheduler.store.models import ContactPoint, IdentityConflict, IdentityEvent, Lead
from scheduler.store.suppressions import suppress

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
Sessions = async_sessionmaker[AsyncSession]


async def take(sessions: Sessions, **fields: str) -> IntakeResult:
    async with sessions.begin() as session:
        return await intake(session, LeadIn.model_validate(fields), default_region="US", now=NOW)


async def conflicts(sessions: Sessions) -> list[IdentityConflict]:
    async with sessions() as session:
        return list(await session.scalars(select(IdentityConflict).order_by(IdentityConflict.id)))


async def test_a_later_form_with_both_contacts_adds_the_phone(sessions: Sessions) -> None:
    first = await take(sessions, email="dana@acme.com")
    later = await take(sessions, email="Dana@Acme.com", phone="+1 415 555 0123")
    assert later.lead.id == first.lead.id and not later.created and not later.conflicts
    assert later.lead.phone == "+14155550123"
    async with sessions() as session:
        points = await points_for_lead(session, first.lead.id)
        (event,) = await session.scalars(
            select(IdentityEvent).where(IdentityEvent.kind == "phone")
        )
    assert Point(Kind.PHONE, "+14155550123") in points
    assert (event.action, event.actor, event.reason) == (
        "contact_point_added",
        "intake",
        "contact point added",
    )


async def test_two_leads_matched_is_a_conflict_not_a_dropped_phone(sessions: Sessions) -> None:
    """The person wrote on WhatsApp (a lead by phone) and filled a form (a lead by email);
    a later form with both keeps the email's lead and records the phone's for a human."""
    by_phone = await take(sessions, phone="+1 415 555 0123")
    by_email = await take(sessions, email="dana@acme.com")
    both = await take(sessions, email="dana@acme.com", phone="+1 415 555 0123")
    assert both.lead.id == by_email.lead.id and not both.created
    (conflict,) = both.conflicts
    assert (conflict.point, conflict.other_lead_id) == (
        Point(Kind.PHONE, "+14155550123"),
        by_phone.lead.id,
    )
    (stored,) = await conflicts(sessions)
    assert (stored.lead_id, stored.other_lead_id, stored.value, stored.status) == (
        by_email.lead.id,
        by_phone.lead.id,
        "+14155550123",
        "open",
    )
    # Seen again: answered the same, recorded once.
    await take(sessions, email="dana@acme.com", phone="+1 415 555 0123")
    assert len(await conflicts(sessions)) == 1


async def test_a_switchboard_phone_does_not_merge_two_people(sessions: Sessions) -> None:
    dana = await take(sessions, email="dana@acme.com", phone="+1 212 555 0100")
    omar = await take(sessions, email="omar@acme.com", phone="+1 212 555 0100")
    assert omar.created and omar.lead.id != dana.lead.id
    assert omar.lead.email == "omar@acme.com" and omar.lead.phone is None
    (conflict,) = omar.conflicts
    assert conflict.other_lead_id == dana.lead.id and "shared phone" in conflict.reason
    # The phone alone still finds its first owner; an email-less lead by phone merges.
    assert (await take(sessions, phone="+1 212 555 0100")).lead.id == dana.lead.id
    li = await take(sessions, phone="+1 415 555 0199")
    merged = await take(sessions, email="li@acme.com", phone="+1 415 555 0199")
    assert merged.lead.id == li.lead.id and merged.lead.email == "li@acme.com"


async def test_mexican_and_brazilian_spellings_are_one_lead(sessions: Sessions) -> None:
    mx = await take(sessions, phone="+52 1 55 1234 5678")
    assert (await take(sessions, phone="+52 55 1234 5678")).lead.id == mx.lead.id
    br = await take(sessions, phone="+55 61 8123-4567")
    assert (await take(sessions, phone="+55 61 98123-4567")).lead.id == br.lead.id
    async with sessions() as session:
        assert len(list(await session.scalars(select(Lead)))) == 2


async def test_whatsapp_follow_ups_go_to_the_address_the_lead_wrote_from(
    sessions: Sessions,
) -> None:
    """A touch on WhatsApp reaches a Mexican lead at the ``521…`` id Meta sent and a
    username-only lead at its BSUID; a suppressed address is not reached at all."""
    wa_id = Point(Kind.WHATSAPP, "+5215512345678")
    bsuid = Point(Kind.BSUID, "US.13491208655302741918")
    async with sessions.begin() as session:
        mx = await intake(
            session, LeadIn(phone="+525512345678"), default_region="US", now=NOW, points=(wa_id,)
        )
        user = await intake(session, LeadIn(), default_region="US", now=NOW, points=(bsuid,))
        quiet = await intake(
            session, LeadIn(), default_region="US", now=NOW, points=(Point(Kind.BSUID, "US.99"),)
        )
        await suppress(session, "US.99", reason="reply_optout", detail=None, now=NOW)
    async with sessions() as session:
        facts = await load_facts(session, {mx.lead.id, user.lead.id, quiet.lead.id}, 0)
    assert facts[mx.lead.id].address("whatsapp") == "+5215512345678"
    assert facts[user.lead.id].address("whatsapp") == "US.13491208655302741918"
    assert user.lead.phone is None and user.created
    assert facts[quiet.lead.id].address("whatsapp") is None


@pytest.mark.fresh_store  # downgrades and upgrades the schema
async def test_the_migration_backfills_contact_points_of_existing_leads(
    engine: AsyncEngine,
) -> None:
    def downgrade(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0005")

    async with engine.begin() as connection:
        await connection.run_sync(downgrade)
        for n, (email, phone) in enumerate(
            [("a@acme.com", "+14155550101"), ("b@acme.com", None), (None, "+14155550103")]
        ):
            await connection.execute(
                text(
                    "INSERT INTO leads (token, email, phone, attribution, stage, version, "
                    "bot_paused, created_at, updated_at) VALUES (:token, :email, :phone, '{}', "
                    "'new', 1, false, :now, :now)"
                ),
                {"token": f"t{n}", "email": email, "phone": phone, "now": NOW},
            )
    await upgrade(engine)
    sessions = session_factory(engine)
    async with sessions() as session:
        rows = (
            await session.execute(
                select(Lead.token, ContactPoint.kind, ContactPoint.value)
                .join(Lead, Lead.id == ContactPoint.lead_id)
                .order_by(Lead.token, ContactPoint.kind)
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("t0", "email", "a@acme.com"),
        ("t0", "phone", "+14155550101"),
        ("t1", "email", "b@acme.com"),
        ("t2", "phone", "+14155550103"),
    ]
    # And intake now finds them by those points.
    assert (await take(sessions, phone="+1 415 555 0103")).created is False


async def test_concurrent_intakes_of_people_sharing_phones(sessions: Sessions) -> None:
    """Forms of 30 people (3 per switchboard phone), each sent three times at once: every
    email is exactly one lead, every phone the primary of exactly one, nothing lost."""
    people = [(f"p{n}@acme.com", f"+1 212 555 {n // 3:04d}") for n in range(30)]

    async def form(email: str, phone: str) -> IntakeResult:
        async with sessions.begin() as session:
            data = LeadIn(email=email, phone=phone)
            return await intake(session, data, default_region="US", now=NOW)

    results = await asyncio.gather(*(form(e, p) for e, p in people * 3))
    async with sessions() as session:
        leads = list(await session.scalars(select(Lead)))
        points = list(await session.scalars(select(ContactPoint)))
    assert sorted(lead.email or "" for lead in leads) == sorted(e for e, _ in people)
    assert sorted(lead.phone for lead in leads if lead.phone) == sorted(
        {f"+1212555{n:04d}" for n in range(10)}
    )
    assert sum(r.created for r in results) == 30
    owners = {(p.kind, p.value): p.lead_id for p in points}
    assert len(owners) == len(points) == 40  # 30 emails + 10 phones, each owned once
    by_email = {lead.email: lead.id for lead in leads}
    assert all(r.lead.id == by_email[r.lead.email] for r in results)
