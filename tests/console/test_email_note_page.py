"""A note read from an email reply on the lead page's timeline (issue 15, item 2): the
summary, then next step, budget, timeline, objections and sentiment, each readable, and who
read the reply. SQLite and Postgres (the ``engine`` fixture)."""

from __future__ import annotations

import html
import re
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.console.lead_view import email_note_item
from bot.email.notes_service import NOTES
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.store.models import LeadNote, utcnow
from tests.bot.support import AUTH
from tests.console.support import ConsoleClient

Sessions = async_sessionmaker[AsyncSession]
REPLY = (
    "Hi Ana,\n\nWe'd like to move forward, but our budget is around 20k and we need it live "
    "by next month. Honestly the quote is too expensive.\n\nBest,\nJane"
)


def fields_of(page: str) -> dict[str, str]:
    """The labelled fields of the email note on the page."""
    block = page.split('class="facts note-fields"', 1)[1].split("</dl>", 1)[0]
    pairs = re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", block, re.S)
    return {html.unescape(k): html.unescape(v) for k, v in pairs}


async def test_the_email_note_shows_its_fields_on_the_timeline(
    admin: ConsoleClient, console_client: TestClient[Any, Any], sessions: Sessions
) -> None:
    async with sessions.begin() as session:
        lead = (
            await intake(
                session,
                LeadIn(email="jane@acme.example", name="Jane Doe"),
                default_region="US",
                now=utcnow(),
            )
        ).lead
    body = {
        "from": "jane@acme.example",
        "to": "sales@bot.example.com",
        "subject": "Re: proposal",
        "text": REPLY,
        "message_id": "<r1@acme.example>",
    }
    response = await console_client.post("/webhooks/email", json=body, headers=AUTH)
    assert response.status == 200, await response.text()
    await console_client.app[NOTES].drain()

    page = html.unescape(await (await admin.get(f"/console/leads/{lead.id}")).text())
    assert "Note from an email" in page
    assert "We'd like to move forward, but our budget is around 20k" in page  # the summary
    assert "extractive: first sentences and the rules' facts" in page
    assert "Subject: Re: proposal" in page
    assert fields_of(page) == {
        "Next step": "—",
        "Budget": "20,000 — “20k”",
        "Timeline": "This quarter — “next month”",
        "Objections": "price: “Honestly the quote is too expensive.”",
        "Sentiment": "not read",
    }


def test_a_note_the_model_read_shows_its_reader_and_every_field() -> None:
    note = LeadNote(
        id=7,
        lead_id=1,
        kind="email",
        author="email",
        body="Jane wants to go ahead; price is the sticking point.",
        data={
            "summary": "Jane wants to go ahead; price is the sticking point.",
            "next_step": "Send a revised offer by Friday",
            "budget": {"text": "about 20k", "evidence": "our budget is around 20k"},
            "timeline": None,
            "objections": [
                {"kind": "price", "evidence": "too expensive"},
                {"kind": "authority", "evidence": "check with my CFO"},
            ],
            "sentiment": "mixed",
            "source": "llm",
            "prompt_version": "email-note-2026-12-1",
            "injection_suspected": False,
        },
        created_at=utcnow(),
    )
    item = email_note_item(note)
    assert item.body.startswith("Jane wants to go ahead")
    assert dict(item.fields) == {
        "Next step": "Send a revised offer by Friday",
        "Budget": "about 20k — “our budget is around 20k”",
        "Timeline": "—",
        "Objections": "price: “too expensive”; authority: “check with my CFO”",
        "Sentiment": "mixed",
    }
    assert item.detail == "read by the model (email-note-2026-12-1)"
