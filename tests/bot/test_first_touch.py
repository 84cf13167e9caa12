"""Workflow 2 end to end: POST /api/leads → enrich, qualify → first email over real SMTP.

The service runs on 127.0.0.1 with the parametrized stage store and a real local SMTP
server. Waits are on events (the SMTP server's arrivals, the runner going idle), never sleeps.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.app import create_app
from bot.email.first_touch_service import RUNNER
from bot.http.appkeys import SESSIONS
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.store.models import Lead, OutboxItem, Touch, utcnow
from scheduler.store.reps import add_rep
from tests.bot.support import AUTH, make_settings
from tests.support.fakes.smtp import FakeSmtp

LEADS = json.loads((Path(__file__).parents[1] / "data" / "first_touch" / "leads.json").read_text())
REP = "rep.anna@acme-analytics.example"
Client = TestClient[Any, Any]


@pytest.fixture
async def smtp() -> AsyncIterator[FakeSmtp]:
    async with FakeSmtp() as server:
        yield server


@pytest.fixture
async def service(
    engine: AsyncEngine,
    smtp: FakeSmtp,
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> Client:
    settings = make_settings(
        smtp_url=smtp.url,
        email_from="Acme Sales <sales@bot.example.com>",
        public_url="https://bot.example.com",
    )
    # The periodic jobs stay off: the first reply must not depend on the 5-second sweep.
    client = await aiohttp_client(create_app(settings, engine=engine, run_scheduler=False))
    async with async_sessionmaker(engine).begin() as session:
        await add_rep(session, name="Anna", email=REP, whatsapp=None, now=utcnow())
    return client


def sessions_of(client: Client) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = client.app[SESSIONS]
    return sessions


def plain(got: Any) -> str:
    """The text/plain body of a received message, with the wire's CRLFs undone."""
    body = got.message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


async def post_lead(client: Client, body: dict[str, Any]) -> int:
    response = await client.post("/api/leads", json=body, headers=AUTH)
    assert response.status == 201, await response.text()
    return int((await response.json())["lead"]["id"])


async def touches_of(client: Client, lead_id: int) -> list[Touch]:
    async with sessions_of(client)() as session:
        rows = await session.scalars(select(Touch).where(Touch.lead_id == lead_id))
        return sorted(rows, key=lambda t: t.id)


async def test_warm_lead_gets_the_drafted_first_reply_within_60_seconds(
    service: Client, smtp: FakeSmtp
) -> None:
    started = time.monotonic()
    lead_id = await post_lead(service, LEADS["warm"])
    [got] = await smtp.wait_messages(1, timeout=60)
    elapsed = time.monotonic() - started
    assert elapsed < 60
    assert got.rcpt_tos == ["dana.whitfield@northwind-logistics.com"]
    await service.app[RUNNER].drain()  # the outcome is recorded once the send returns

    touches = await touches_of(service, lead_id)
    first = touches[0]
    assert (first.sequence, first.step, first.status) == ("new_lead", "first_reply", "sent")
    assert first.draft and first.draft in plain(got)
    assert got.message["Subject"] == first.meta["subject"]
    assert [t.status for t in touches[1:]] == ["pending"] * 4  # Day 1, 3, 7, 14 wait

    async with sessions_of(service)() as session:
        lead = await session.get_one(Lead, lead_id)
    assert lead.stage == "contacted"
    assert lead.qualification is not None and lead.qualification["tier"] == "warm"
    assert lead.qualification["icp_version"] and lead.qualification["script_version"]
    assert lead.enrichment is not None
    assert lead.enrichment["company"] == "Northwind Logistics"
    assert lead.enrichment["seniority"] == "head/director"
    assert lead.enrichment["phone"] == {"country": "US", "timezone": "America/Los_Angeles"}


async def test_a_plain_form_lead_still_gets_its_first_reply(
    service: Client, smtp: FakeSmtp
) -> None:
    """Name and email only: nothing is known, which is not the same as cold."""
    lead_id = await post_lead(service, LEADS["plain"])
    [got] = await smtp.wait_messages(1, timeout=60)
    assert got.rcpt_tos == ["lee.park@brightwave-studio.com"]
    await service.app[RUNNER].drain()
    async with sessions_of(service)() as session:
        lead = await session.get_one(Lead, lead_id)
    assert lead.qualification is not None
    assert lead.qualification["tier"] == "cold"
    assert lead.qualification["first_touch"]["action"] == "auto_reply"
    assert lead.stage == "contacted"


async def test_the_default_first_reply_names_no_made_up_company_or_person(
    service: Client, smtp: FakeSmtp
) -> None:
    """A fresh install (no company, sender or signature configured) reads neutrally."""
    await post_lead(service, LEADS["plain"])
    [got] = await smtp.wait_messages(1, timeout=60)
    text = plain(got)
    assert got.message["Subject"] == "Re: your enquiry to our team"
    assert "Thanks for reaching out to our team." in text
    letter = text[: text.index("Best,\nThe team\n")]  # then the unsubscribe footer
    assert "Acme" not in letter and "Sam" not in letter and "I'm" not in letter


async def test_the_configured_company_sender_and_signature_are_in_the_email(
    engine: AsyncEngine, smtp: FakeSmtp, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    settings = make_settings(
        smtp_url=smtp.url,
        email_from="Priya <priya@bot.example.com>",
        public_url="https://bot.example.com",
        company_name="Northwind Analytics",
        sender_name="Priya",
        # as a one-line environment spells it: \n is a line break
        email_signature="Priya Shah\\nHead of Sales, Northwind Analytics",
    )
    client = await aiohttp_client(create_app(settings, engine=engine, run_scheduler=False))
    await post_lead(client, LEADS["plain"])
    [got] = await smtp.wait_messages(1, timeout=60)
    text = plain(got)
    assert got.message["Subject"] == "Re: your enquiry to Northwind Analytics"
    assert "Thanks for reaching out to Northwind Analytics." in text
    assert "I'm Priya and I'll be your point of contact." in text
    assert "Best,\nPriya Shah\nHead of Sales, Northwind Analytics" in text


async def test_duplicate_intake_starts_nothing_new(service: Client, smtp: FakeSmtp) -> None:
    lead_id = await post_lead(service, LEADS["warm"])
    await smtp.wait_messages(1, timeout=60)
    again = await service.post("/api/leads", json=LEADS["warm"], headers=AUTH)
    assert again.status == 200
    await service.app[RUNNER].drain()
    assert len(smtp.received) == 1
    assert len(await touches_of(service, lead_id)) == 5


async def test_hot_lead_waits_for_the_rep_and_the_signed_link_sends_once(
    service: Client, smtp: FakeSmtp
) -> None:
    lead_id = await post_lead(service, LEADS["hot"])
    [note] = await smtp.wait_messages(1, timeout=60)
    await service.app[RUNNER].drain()
    assert note.rcpt_tos == [REP]  # the rep is told; the lead got nothing
    text = plain(note)
    [url] = re.findall(r"https://bot\.example\.com(/approve/\S+)", text)
    [first, *_] = await touches_of(service, lead_id)
    assert first.status == "awaiting_approval"

    page = await service.get(url)
    assert page.status == 200
    html = await page.text()
    assert "Approve and send" in html and "Alpenbau" in html
    assert len(smtp.received) == 1  # GET never acts
    assert (await touches_of(service, lead_id))[0].status == "awaiting_approval"

    sent = await service.post(url)
    assert sent.status == 200
    [_, reply] = await smtp.wait_messages(2, timeout=60)
    assert reply.rcpt_tos == ["m.keller@alpenbau-gruppe.de"]
    first = (await touches_of(service, lead_id))[0]
    assert first.status == "sent" and first.approved_by == "approval link"
    assert first.draft and first.draft in plain(reply)

    again = await service.post(url)
    assert again.status == 409
    async with sessions_of(service)() as session:
        sends = await session.scalars(select(OutboxItem).where(OutboxItem.lead_id == lead_id))
        assert len(list(sends)) == 1
    assert len(smtp.received) == 2


async def test_tampered_approval_token_is_rejected(service: Client, smtp: FakeSmtp) -> None:
    await post_lead(service, LEADS["hot"])
    [note] = await smtp.wait_messages(1, timeout=60)
    text = plain(note)
    [url] = re.findall(r"https://bot\.example\.com(/approve/\S+)", text)
    payload, mac = url.removeprefix("/approve/").split(".")
    forged = f"/approve/{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{mac}"
    for path in (forged, "/approve/garbage", url + "x"):
        assert (await service.get(path)).status == 400
        assert (await service.post(path)).status == 400
    await service.app[RUNNER].drain()
    assert len(smtp.received) == 1


@pytest.mark.parametrize("kind", ["cold", "disposable"])
async def test_cold_and_disposable_leads_get_nothing(
    service: Client, smtp: FakeSmtp, kind: str
) -> None:
    lead_id = await post_lead(service, LEADS[kind])
    await service.app[RUNNER].drain()
    assert await touches_of(service, lead_id) == []
    assert smtp.received == []
    async with sessions_of(service)() as session:
        lead = await session.get_one(Lead, lead_id)
    assert lead.qualification is not None and lead.qualification["tier"] == "cold"
    assert lead.stage == "new"
    if kind == "disposable":
        assert "disposable email domain" in lead.qualification["reasons"]
        assert lead.enrichment is not None and lead.enrichment["disposable"] is True


async def test_safety_job_picks_up_a_lead_the_request_task_missed(
    service: Client, smtp: FakeSmtp
) -> None:
    # As if the process crashed right after the 201: the lead exists, nothing else does.
    async with sessions_of(service).begin() as session:
        result = await intake(session, LeadIn(**LEADS["warm"]), default_region="US", now=utcnow())
    runner = service.app[RUNNER]
    assert await runner.safety(utcnow()) == 1
    [got] = await smtp.wait_messages(1, timeout=60)
    assert got.rcpt_tos == ["dana.whitfield@northwind-logistics.com"]
    assert await runner.safety(utcnow()) == 0  # idempotent: processed leads are left alone
    await runner.drain()
    assert len(smtp.received) == 1
    assert len(await touches_of(service, result.lead.id)) == 5


async def test_imported_leads_are_left_alone_by_default(service: Client, smtp: FakeSmtp) -> None:
    async with sessions_of(service).begin() as session:
        await intake(
            session, LeadIn(**LEADS["warm"]), default_region="US", now=utcnow(), actor="import"
        )
    assert await service.app[RUNNER].safety(utcnow()) == 0
    assert smtp.received == []


async def test_safety_job_reaches_leads_behind_a_page_that_keeps_failing(
    service: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 12, item 9: a full page of leads that fail every time must not hide the rest.
    async with sessions_of(service).begin() as session:
        ids = [
            (
                await intake(
                    session,
                    LeadIn(name=f"Lead {n}", email=f"lead{n}@example.org"),
                    default_region="US",
                    now=utcnow(),
                )
            ).lead.id
            for n in range(101)
        ]
    runner = service.app[RUNNER]
    visited: list[int] = []

    async def failing(lead_id: int, now: object) -> None:
        visited.append(lead_id)
        raise RuntimeError("the enrichment provider rejects this lead")

    monkeypatch.setattr(runner.flow, "process", failing)
    await runner.safety(utcnow())
    await runner.safety(utcnow())
    assert sorted(set(visited)) == ids
