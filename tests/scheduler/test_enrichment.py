"""Enrichment (offline and over HTTP) and the email-lead flow against the stage store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialogs.icp import load_icp
from dialogs.loader import load_scripts
from scheduler.followups.cadence import load_cadence
from scheduler.intake.email_qualify import EmailQualifier
from scheduler.intake.enrichment import enrich
from scheduler.intake.enrichment.http import HttpEnrichmentProvider
from scheduler.intake.enrichment.offline import company_from_domain, enrich_offline, seniority
from scheduler.intake.first_touch import FirstTouch, FirstTouchConfig, unprocessed_leads
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.store.models import Lead, Touch
from tests.support.fakes.enrichment import FakeEnrichment

ROOT = Path(__file__).parents[2]
LEADS = json.loads((ROOT / "tests" / "data" / "first_touch" / "leads.json").read_text())
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("email", "free", "disposable", "company"),
    [
        ("dana@acme-robotics.io", False, False, "Acme Robotics"),
        ("j.smith@mail.northwind.co.uk", False, False, "Northwind"),
        ("ops@ibm.com", False, False, "IBM"),
        ("kai@studio_42.dev", False, False, "Studio 42"),
        ("someone@gmail.com", True, False, None),
        ("x@outlook.de", True, False, None),
        ("m@web.de", True, False, None),
        ("m@proton.me", True, False, None),
        ("temp@mailinator.com", False, True, None),
        ("temp@sub.yopmail.com", False, True, None),
    ],
)
def test_email_domains(email: str, free: bool, disposable: bool, company: str | None) -> None:
    facts = enrich_offline(email=email, phone=None, role=None, company=None)
    assert (facts["free_mail"], facts["disposable"]) == (free, disposable)
    assert facts["company_guess"] == company == facts["company"]


def test_typed_company_wins_over_the_domain_guess() -> None:
    facts = enrich_offline(email="a@nw-log.com", phone=None, role=None, company="Northwind")
    assert (facts["company"], facts["company_guess"]) == ("Northwind", "Nw Log")
    assert company_from_domain("mail.example") is None or company_from_domain("x.mail") is None


@pytest.mark.parametrize(
    ("phone", "country", "zone"),
    [
        ("+14155552671", "US", "America/Los_Angeles"),
        ("+442079460958", "GB", "Europe/London"),
        ("+4930901820", "DE", "Europe/Berlin"),
        ("+5511987654321", "BR", "America/Sao_Paulo"),
        ("+61291234567", "AU", "Australia/Sydney"),
        ("+12125550100", "US", "America/New_York"),
    ],
)
def test_phone_country_and_zone(phone: str, country: str, zone: str) -> None:
    facts = enrich_offline(email=None, phone=phone, role=None, company=None)
    assert facts["phone"] == {"country": country, "timezone": zone}


@pytest.mark.parametrize(
    ("role", "bucket"),
    [
        ("CEO & Co-Founder", "c-level"),
        ("Chief Revenue Officer", "c-level"),
        ("Geschäftsführer", "c-level"),
        ("Managing Director EMEA", "c-level"),
        ("SVP, Operations", "vp"),
        ("Vice President of Sales", "vp"),
        ("Head of Growth", "head/director"),
        ("Director, IT", "head/director"),
        ("Marketing Manager", "manager"),
        ("Team Lead Data", "manager"),
        ("Executive Assistant to the CEO", "individual"),
        ("Software Engineer", "individual"),
        ("", None),
        (None, None),
    ],
)
def test_seniority(role: str | None, bucket: str | None) -> None:
    assert seniority(role) == bucket


@pytest.fixture
async def provider_server() -> AsyncIterator[FakeEnrichment]:
    async with FakeEnrichment() as fake:
        fake.people["dana@acme-robotics.io"] = {
            "status": 200,
            "likelihood": 8,
            "person": {"title": "VP Engineering", "country": "US"},
            "company": {"name": "ACME Robotics Inc.", "industry": "robotics", "employees": 120},
        }
        yield fake


async def test_http_provider_merges_what_it_returns(provider_server: FakeEnrichment) -> None:
    provider = HttpEnrichmentProvider(provider_server.url, token="enrich-token")
    try:
        facts = await enrich(
            email="dana@acme-robotics.io",
            phone=None,
            role=None,
            company=None,
            name="Dana",
            provider=provider,
        )
        again = await enrich(
            email="dana@acme-robotics.io",
            phone=None,
            role=None,
            company=None,
            name="Dana",
            provider=provider,
        )
        unknown = await enrich(
            email="x@globex.com", phone=None, role=None, company=None, name=None, provider=provider
        )
        free = await enrich(
            email="x@gmail.com", phone=None, role=None, company=None, name=None, provider=provider
        )
    finally:
        await provider.aclose()
    assert facts["company"] == "ACME Robotics Inc." and facts["industry"] == "robotics"
    assert (facts["employees"], facts["title"], facts["seniority"]) == (
        120,
        "VP Engineering",
        "vp",
    )
    assert again == facts
    assert unknown["provider"] == "http" and unknown["company"] == "Globex"
    assert "provider" not in free  # nothing to ask about a free mailbox
    asked = [r["email"] for r in provider_server.requests]
    assert asked == ["dana@acme-robotics.io", "x@globex.com"]  # cached; gmail never asked
    assert provider_server.requests[0]["domain"] == "acme-robotics.io"
    assert provider_server.requests[0]["authorization"] == "Bearer enrich-token"


@pytest.mark.parametrize("status", [500, 401, 429])
async def test_provider_failure_keeps_the_offline_facts(
    provider_server: FakeEnrichment, status: int
) -> None:
    provider_server.status = status
    provider = HttpEnrichmentProvider(provider_server.url, token="enrich-token")
    try:
        facts = await enrich(
            email="dana@acme-robotics.io",
            phone=None,
            role="CTO",
            company=None,
            name=None,
            provider=provider,
        )
    finally:
        await provider.aclose()
    assert facts["company"] == "Acme Robotics" and facts["seniority"] == "c-level"
    assert facts["provider_error"]["code"] == f"http_{status}"


async def test_unreachable_provider_is_an_error_not_a_crash() -> None:
    provider = HttpEnrichmentProvider("http://127.0.0.1:9/v1/enrich", timeout=2)
    try:
        facts = await enrich(
            email="a@acme.com", phone=None, role=None, company=None, name=None, provider=provider
        )
    finally:
        await provider.aclose()
    assert facts["provider_error"]["code"] == "unreachable" and facts["company"] == "Acme"


def _flow(sessions: async_sessionmaker[AsyncSession], cold: str = "ignore") -> FirstTouch:
    cadence = load_cadence(ROOT / "scheduler" / "followups" / "cadences" / "default.yaml")
    script = load_scripts(ROOT / "dialogs" / "scripts")["b2b_default"]
    qualifier = EmailQualifier(load_icp(), script)
    return FirstTouch(sessions, cadence, qualifier, config=FirstTouchConfig(cold_leads=cold))  # type: ignore[arg-type]


async def _lead(
    sessions: async_sessionmaker[AsyncSession], kind: str, actor: str = "intake"
) -> int:
    async with sessions.begin() as session:
        result = await intake(
            session, LeadIn(**LEADS[kind]), default_region="US", now=NOW, actor=actor
        )
        return result.lead.id


async def _touches(sessions: async_sessionmaker[AsyncSession], lead_id: int) -> list[Touch]:
    async with sessions() as session:
        return list(await session.scalars(select(Touch).where(Touch.lead_id == lead_id)))


@pytest.mark.parametrize(
    ("kind", "tier", "action", "steps"),
    [
        ("warm", "warm", "auto_reply", 5),
        ("hot", "hot", "approval", 5),
        ("cold", "cold", "none", 0),
        ("disposable", "cold", "none", 0),
    ],
)
async def test_process_stores_the_verdict_and_starts_the_sequence(
    sessions: async_sessionmaker[AsyncSession], kind: str, tier: str, action: str, steps: int
) -> None:
    lead_id = await _lead(sessions, kind)
    outcome = await _flow(sessions).process(lead_id, NOW)
    assert outcome is not None and (outcome.tier, outcome.action) == (tier, action)
    touches = await _touches(sessions, lead_id)
    assert len(touches) == steps
    if steps:
        first = min(touches, key=lambda t: t.due_at)
        assert first.step == "first_reply" and first.due_at == NOW  # due at once
    async with sessions() as session:
        lead = await session.get_one(Lead, lead_id)
    assert lead.qualification is not None and lead.qualification["tier"] == tier
    assert lead.qualification["first_touch"]["action"] == action
    assert lead.enrichment is not None and lead.enrichment["version"]


async def test_process_is_idempotent_and_cold_nurture_is_a_setting(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    lead_id = await _lead(sessions, "cold")
    flow = _flow(sessions, cold="nurture")
    outcome = await flow.process(lead_id, NOW)
    assert outcome is not None and (outcome.action, outcome.sequence) == ("nurture", "nurture")
    assert await flow.process(lead_id, NOW) is None
    assert sorted(t.step for t in await _touches(sessions, lead_id)) == [
        "check_in",
        "final",
        "resource",
    ]
    disposable = await _lead(sessions, "disposable")
    assert (await flow.process(disposable, NOW)).action == "none"  # type: ignore[union-attr]


async def test_unprocessed_leads_honours_the_creator_and_age(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    form = await _lead(sessions, "warm")
    imported = await _lead(sessions, "hot", actor="import")
    config = FirstTouchConfig()
    async with sessions() as session:
        assert await unprocessed_leads(session, config, now=NOW) == [form]
        with_import = FirstTouchConfig(actors=("intake", "import"))
        assert await unprocessed_leads(session, with_import, now=NOW) == [form, imported]
        later = NOW.replace(day=5)
        assert await unprocessed_leads(session, config, now=later) == []
    await _flow(sessions).process(form, NOW)
    async with sessions() as session:
        assert await unprocessed_leads(session, config, now=NOW) == []
