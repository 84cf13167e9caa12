"""What a form sends — the prospect's ``message`` and ``answers`` per question — is kept on
the lead and read by the email qualifier (answers keyed by slot id or by the question's
text; the older spelling inside ``attribution`` still works)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialogs.icp import load_icp
from dialogs.loader import load_scripts
from scheduler.followups.cadence import load_cadence
from scheduler.intake.email_qualify import EmailLead, EmailQualifier
from scheduler.intake.first_touch import FirstTouch
from scheduler.pipeline.leads import LeadIn, form_submissions, intake
from scheduler.store.models import Lead

ROOT = Path(__file__).parents[2]
SCRIPT = load_scripts(ROOT / "dialogs" / "scripts")["b2b_default"]
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
FIELDS: dict[str, Any] = {"name": "Dana", "company": "Northwind", "source": "form"}
Sessions = async_sessionmaker[AsyncSession]


def slot_values(qualification: dict[str, Any]) -> dict[str, Any]:
    return {k: v["value"] for k, v in qualification["slots"].items() if not v["unknown"]}


def test_answers_are_matched_by_slot_id_or_question_text() -> None:
    lead = EmailLead.of(
        FIELDS,
        {"timeline": "older spelling loses", "utm_source": "fb"},
        SCRIPT,
        message="Need a portal",
        answers={
            "How many people work at your company?": "about 40",
            "answer_timeline": "next month",
            "Favourite colour": "teal",
        },
    )
    assert lead.answers == {"company_size": "about 40", "timeline": "next month"}
    # An answer to a question the script does not ask is still something they said.
    assert lead.message == "Need a portal\nFavourite colour: teal"


def test_the_attribution_spelling_is_still_read() -> None:
    lead = EmailLead.of(FIELDS, {"timeline": "next month", "message": "hello"}, SCRIPT)
    assert (lead.answers, lead.message) == ({"timeline": "next month"}, "hello")


async def test_the_qualifier_reads_message_and_answers() -> None:
    qualifier = EmailQualifier(load_icp(), SCRIPT)
    via_fields = await qualifier.qualify(
        dict(FIELDS),
        {},
        {},
        NOW,
        message="We are about 40 people",
        answers={"And when would you like to get started?": "next month"},
    )
    via_attribution = await qualifier.qualify(
        dict(FIELDS), {"message": "We are about 40 people", "timeline": "next month"}, {}, NOW
    )
    nothing = await qualifier.qualify(dict(FIELDS), {}, {}, NOW)
    assert {"company_size", "timeline"} <= set(slot_values(via_fields))
    assert slot_values(via_fields) == slot_values(via_attribution)
    assert not {"company_size", "timeline"} & set(slot_values(nothing))


async def test_intake_keeps_each_form_and_the_first_touch_qualifies_on_it(
    sessions: Sessions,
) -> None:
    first = LeadIn(
        email="dana@northwind.example",
        source="webflow",
        message="We are about 40 people",
        answers={"timeline": "next month", "blank": "  "},
    )
    again = LeadIn(email="dana@northwind.example", message="Any update?")
    async with sessions.begin() as session:
        lead_id = (await intake(session, first, default_region="US", now=NOW)).lead.id
    async with sessions.begin() as session:
        await intake(session, again, default_region="US", now=NOW)
        await intake(session, LeadIn(email="dana@northwind.example"), default_region="US", now=NOW)
    async with sessions() as session:
        forms = await form_submissions(session, lead_id)
    assert [(f.message, f.answers, f.source) for f in forms] == [
        ("We are about 40 people", {"timeline": "next month"}, "webflow"),
        ("Any update?", {}, None),
    ]

    cadence = load_cadence(ROOT / "scheduler" / "followups" / "cadences" / "default.yaml")
    flow = FirstTouch(sessions, cadence, EmailQualifier(load_icp(), SCRIPT))
    assert await flow.process(lead_id, NOW) is not None
    async with sessions() as session:
        lead = await session.get_one(Lead, lead_id)
    assert lead.qualification is not None
    assert {"company_size", "timeline"} <= set(slot_values(lead.qualification))
