"""Workflow 3 end to end, in compressed time: quiet → Dormant → reactivation draft → the rep's
digest at 08:00 their time → approve link → sent → reply → Contacted, owner notified.

The service runs with the parametrized stage store (SQLite and Postgres) and a real local SMTP
server (aiosmtpd); the periodic jobs are called with the simulated time instead of running on
the wall clock, so 100 days pass in a few seconds. Waits are on SMTP arrivals, never sleeps.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.app import create_app
from bot.http.appkeys import DISPATCHER, JOBS, SESSIONS
from bot.http.digest_links import CLOCK
from bot.http.followups import CADENCE
from scheduler.followups.touches import start_sequence
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.store.models import (
    DialogSessionRow,
    Lead,
    OutboxItem,
    Stage,
    StageEvent,
    Touch,
)
from scheduler.store.reps import add_rep
from tests.bot.support import make_settings
from tests.bot.test_email_in import MAILGUN_KEY, fixture, sign
from tests.support.fakes.smtp import FakeSmtp, Received
from tests.support.reactivation import waiting_reactivation_draft

Client = TestClient[Any, Any]
Sessions = async_sessionmaker[AsyncSession]
REP = "rep.ines@acme.example"
LEAD = "dana.smith@northwind.example"
ZONE = "America/New_York"
T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # a Monday, 10:00 in New York


class SimulatedClock:
    """What the digest links check their expiry against: the test's simulated time."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock()


@pytest.fixture
async def smtp() -> AsyncIterator[FakeSmtp]:
    async with FakeSmtp() as server:
        yield server


@pytest.fixture
async def service(
    engine: AsyncEngine,
    smtp: FakeSmtp,
    clock: SimulatedClock,
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> Client:
    settings = make_settings(
        smtp_url=smtp.url,
        email_from="Acme Sales <sales@bot.example.com>",
        public_url="https://bot.example.com",
        mailgun_signing_key=MAILGUN_KEY,
        first_touch=False,  # the cadence is started by hand below, at simulated time
        digest_hour=8,
        digest_link_hours=48,
    )
    app = create_app(settings, engine=engine, run_scheduler=False)
    app[CLOCK] = clock
    return await aiohttp_client(app)


def sessions_of(client: Client) -> Sessions:
    sessions: Sessions = client.app[SESSIONS]
    return sessions


def job(client: Client, name: str) -> Callable[[datetime], Awaitable[Any]]:
    [found] = [j.func for j in client.app[JOBS] if j.name == name]
    return found


def plain(got: Received) -> str:
    body = got.message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def to(smtp: FakeSmtp, address: str) -> list[Received]:
    return [r for r in smtp.received if r.rcpt_tos == [address]]


async def lead_row(client: Client, lead_id: int) -> Lead:
    async with sessions_of(client)() as session:
        return await session.get_one(Lead, lead_id)


async def reactivation_touch(client: Client, lead_id: int) -> Touch:
    async with sessions_of(client)() as session:
        return await session.scalar(
            select(Touch).where(
                Touch.lead_id == lead_id,
                Touch.sequence == "reactivation",
                Touch.step == "reactivate",
            )
        )


async def make_quiet_lead(client: Client) -> tuple[int, int]:
    """A rep in New York and a lead who stopped answering at the budget question; the
    new-lead cadence started at T0. Returns (rep id, lead id)."""
    async with sessions_of(client).begin() as session:
        rep = await add_rep(session, name="Ines", email=REP, whatsapp=None, now=T0, timezone=ZONE)
        result = await intake(
            session,
            LeadIn(email=LEAD, name="Dana Smith", company="Northwind"),
            default_region="US",
            now=T0,
        )
        lead = result.lead
        lead.owner_rep_id = rep.id
        lead.last_inbound_at = T0 - timedelta(hours=1)  # their last message
        session.add(
            DialogSessionRow(
                lead_id=lead.id,
                script_id="qualify",
                script_version="1",
                state={"open_slot": "budget", "slots": {}},
                updated_at=T0,
            )
        )
        await session.flush()
        await start_sequence(session, lead.id, "new_lead", cadence=client.app[CADENCE], now=T0)
        return rep.id, lead.id


async def test_quiet_lead_is_reactivated_through_the_digest_and_its_reply_routes_back(
    service: Client, smtp: FakeSmtp, clock: SimulatedClock
) -> None:
    rep_id, lead_id = await make_quiet_lead(service)
    sweep, dormant = job(service, "touches.sweep"), job(service, "touches.dormant")
    reactivate, digest = job(service, "touches.reactivation"), job(service, "reactivation.digest")

    # 1. The cadence runs out with no reply: Dormant (one tick a day, at 16:00 UTC).
    day = T0
    for _ in range(45):
        day += timedelta(days=1)
        await sweep(day)
        await dormant(day)
    lead = await lead_row(service, lead_id)
    assert lead.stage == Stage.DORMANT
    cadence_mails = len(to(smtp, LEAD))
    assert cadence_mails >= 3  # first reply, day 3, day 7, day 14 (day 1 waited for a rep)
    async with sessions_of(service)() as session:
        went_dormant = await session.scalar(
            select(StageEvent.at).where(
                StageEvent.lead_id == lead_id, StageEvent.to_stage == Stage.DORMANT.value
            )
        )

    # 2. Not before 60 days of dormancy; then once per dormancy, drafted, held for the rep.
    assert await reactivation_touch(service, lead_id) is None
    await reactivate(went_dormant + timedelta(days=59))
    assert await reactivation_touch(service, lead_id) is None
    later = went_dormant + timedelta(days=61)
    await reactivate(later)
    await reactivate(later + timedelta(hours=6))  # again (another process): nothing new
    pending = await reactivation_touch(service, lead_id)
    assert pending is not None and pending.cycle > 0  # the cycle is the dormancy's event
    drafted_at = max(pending.due_at, later) + timedelta(minutes=1)  # quiet hours may defer
    await sweep(drafted_at)
    touch = await reactivation_touch(service, lead_id)
    assert touch is not None and touch.status == "awaiting_approval"
    assert touch.draft and "Dana" in touch.draft and "Northwind" in touch.draft
    assert len(to(smtp, LEAD)) == cadence_mails  # nothing reached the lead

    # 3. The digest goes at 08:00 in the rep's zone: not at 07:59, once at 08:00 and after.
    local_day = (drafted_at + timedelta(days=1)).astimezone(ZoneInfo(ZONE)).date()
    eight = datetime.combine(local_day, time(8, 0), ZoneInfo(ZONE)).astimezone(UTC)
    await digest(eight - timedelta(minutes=1))
    assert to(smtp, REP) == []
    await digest(eight)
    await digest(eight + timedelta(minutes=5))  # the next run finds today's sent
    await smtp.wait_messages(cadence_mails + 1)
    [mail] = to(smtp, REP)
    text = plain(mail)
    days = (eight - (T0 - timedelta(hours=1))).days
    assert f"went quiet after the budget question, {days} days ago" in text
    assert "Dana Smith (Northwind)" in text and touch.draft.splitlines()[0] in text
    [approve] = re.findall(r"https://bot\.example\.com(/digest/approve/\S+)", text)
    [skip] = re.findall(r"https://bot\.example\.com(/digest/skip/\S+)", text)
    assert f"https://bot.example.com/console/approvals?touch={touch.id}" in text
    assert skip != approve
    async with sessions_of(service)() as session:
        [row] = await session.scalars(select(OutboxItem).where(OutboxItem.recipient == REP))
    assert row.key == f"digest:rep:{rep_id}:{local_day.isoformat()}"

    # 4. The approve link: GET shows, POST sends through the outbox, once.
    clock.now = eight + timedelta(minutes=20)
    page = await service.get(approve)
    assert page.status == 200 and "Approve and send" in await page.text()
    assert (await reactivation_touch(service, lead_id)).status == "awaiting_approval"
    sent = await service.post(approve)
    assert sent.status == 200, await sent.text()
    await smtp.wait_messages(cadence_mails + 2)
    reactivation_mail = to(smtp, LEAD)[-1]
    assert touch.draft.splitlines()[0] in plain(reactivation_mail)
    assert (await reactivation_touch(service, lead_id)).status == "sent"
    assert (await service.post(approve)).status == 409  # nothing sent twice
    assert (await service.post(skip)).status == 409

    # 5. Their reply routes back: Dormant → Contacted, the owner hears of it by email.
    form = fixture(
        "outlook_reply.json", SENT_MESSAGE_ID=reactivation_mail.message["Message-ID"].strip()
    )
    form |= {
        "sender": LEAD,
        "from": f"Dana Smith <{LEAD}>",
        "subject": "RE: " + str(reactivation_mail.message["Subject"]),
    }
    form = sign(form)  # re-signed after the fields changed
    response = await service.post("/webhooks/email", data=form)
    assert response.status == 200
    assert (await response.json())["lead_id"] == lead_id
    lead = await lead_row(service, lead_id)
    assert lead.stage == Stage.CONTACTED
    await service.app[DISPATCHER].deliver_due(eight + timedelta(hours=1))
    await smtp.wait_messages(cadence_mails + 3)
    [_, note] = to(smtp, REP)
    assert "Lead replied" in str(note.message["Subject"])
    assert lead.last_inbound_at is not None


async def waiting_draft(client: Client, *, n: int = 1, owner: int | None = None) -> Touch:
    """A dormant lead of ``owner`` (a New York rep made if None) whose reactivation draft
    waits for approval, started at T0."""
    async with sessions_of(client).begin() as session:
        if owner is None:
            owner = (
                await add_rep(
                    session, name="Ines", email=REP, whatsapp=None, now=T0, timezone=ZONE
                )
            ).id
        return await waiting_reactivation_draft(
            session,
            LeadIn(email=f"lead{n}@northwind.example", name=f"Lead {n}"),
            owner=owner,
            now=T0,
            age_days=90,
            dormant_days=61,
            draft=f"Hi Lead {n}, shall we catch up?",
            subject="Still on your list?",
        )


def links_of(text: str) -> dict[str, list[str]]:
    return {
        kind: re.findall(rf"https://bot\.example\.com(/digest/{kind}/\S+)", text)
        for kind in ("approve", "skip")
    }


async def test_digest_links_expire_refuse_tampering_and_skip_sends_nothing(
    service: Client, smtp: FakeSmtp, clock: SimulatedClock
) -> None:
    first = await waiting_draft(service, n=1)
    async with sessions_of(service)() as session:
        owner = (await session.get_one(Lead, first.lead_id)).owner_rep_id
    second = await waiting_draft(service, n=2, owner=owner)
    eight = datetime(2026, 1, 6, 13, 0, tzinfo=UTC)  # 08:00 in New York (EST)
    await job(service, "reactivation.digest")(eight)
    [mail] = await smtp.wait_messages(1)
    found = links_of(plain(mail))
    assert len(found["approve"]) == 2 and len(found["skip"]) == 2
    approve_first, skip_second = found["approve"][0], found["skip"][1]

    clock.now = eight + timedelta(hours=1)
    payload, mac = approve_first.removeprefix("/digest/approve/").split(".")
    forged = (
        f"/digest/approve/{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{mac}"
    )
    as_skip = "/digest/skip/" + approve_first.removeprefix("/digest/approve/")  # other purpose
    for path in (forged, as_skip, "/digest/approve/garbage"):
        assert (await service.get(path)).status == 400
        assert (await service.post(path)).status == 400

    async with sessions_of(service).begin() as session:  # the sequence's next step
        session.add(
            Touch(
                lead_id=second.lead_id,
                sequence="reactivation",
                step="last_call",
                cycle=second.cycle,
                channel="email",
                due_at=eight + timedelta(days=7),
                status="pending",
                created_at=T0,
            )
        )
    skipped = await service.post(skip_second)
    assert skipped.status == 200
    async with sessions_of(service)() as session:
        assert (await session.get_one(Touch, second.id)).status == "skipped"
        rest = await session.scalar(
            select(Touch).where(Touch.lead_id == second.lead_id, Touch.step == "last_call")
        )
    assert rest is not None and rest.status == "cancelled"  # no last call after a skip

    clock.now = eight + timedelta(hours=48)  # LEADBOT_DIGEST_LINK_HOURS=48: expired
    assert (await service.get(approve_first)).status == 410
    assert (await service.post(approve_first)).status == 410
    async with sessions_of(service)() as session:
        assert (await session.get_one(Touch, first.id)).status == "awaiting_approval"
    assert len(smtp.received) == 1  # the digest only: nothing reached a lead


async def test_two_processes_running_the_digest_job_send_one_email(
    service: Client, smtp: FakeSmtp
) -> None:
    draft = await waiting_draft(service)
    async with sessions_of(service)() as session:
        owner = (await session.get_one(Lead, draft.lead_id)).owner_rep_id
    digest = job(service, "reactivation.digest")
    eight = datetime(2026, 1, 6, 13, 0, tzinfo=UTC)
    await asyncio.gather(digest(eight), digest(eight), digest(eight + timedelta(minutes=1)))
    await digest(eight + timedelta(hours=3))
    await smtp.wait_messages(1)
    async with sessions_of(service)() as session:
        keys = list(await session.scalars(select(OutboxItem.key)))
    assert keys == [f"digest:rep:{owner}:2026-01-06"]
    assert len(to(smtp, REP)) == 1
    # The next local day is a new digest (the draft is still waiting).
    await digest(eight + timedelta(days=1))
    await smtp.wait_messages(2)
    assert len(to(smtp, REP)) == 2
