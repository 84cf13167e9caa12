"""The lead page: the lead, its qualification, one timeline, and the actions on it (issue 14,
item 3). Every test runs on SQLite and Postgres (the ``engine`` fixture)."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.console import lead_page
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.pipeline.stages import transition
from scheduler.store.models import (
    Booking,
    Lead,
    LeadNote,
    Message,
    OutboxItem,
    StageEvent,
    Suppression,
    Touch,
    utcnow,
)
from scheduler.store.notes import add_note, list_notes
from tests.console.support import ADMIN, OTHER_REP, REP, ConsoleClient, Team

Sessions = async_sessionmaker[AsyncSession]

QUALIFICATION: dict[str, Any] = {
    "fit_score": 80,
    "intent_score": 70,
    "tier": "hot",
    "decision": "qualified",
    "reasons": ["team size fits"],
    "missing": [],
    "disqualifiers": [],
    "script_id": "b2b_saas",
    "script_version": "3",
    "prompt_version": "extract-v7",
    "icp_version": "icp-2026-01",
    "slots": {
        "company_size": {
            "value": "51_200",
            "evidence": "we are about 120 people",
            "unknown": False,
        },
        "timeline": {"value": "asap", "evidence": "need it by March", "unknown": False},
    },
}


async def new_lead(
    sessions: Sessions,
    *,
    email: str = "jane@acme.example",
    phone: str | None = "+14155550100",
    owner: int | None = None,
    **values: Any,
) -> int:
    """A lead (created in ``new`` by intake) with ``values`` set on it."""
    async with sessions.begin() as session:
        result = await intake(
            session,
            LeadIn(
                name="Jane Doe",
                email=email,
                phone=phone,
                company="Acme",
                source="webform",
                attribution={"campaign": "spring-promo", "utm_medium": "cpc"},
            ),
            default_region="US",
            now=utcnow() - timedelta(days=2),
        )
        lead = result.lead
        lead.owner_rep_id = owner
        for name, value in values.items():
            setattr(lead, name, value)
        return lead.id


async def read_lead(sessions: Sessions, lead_id: int) -> Lead:
    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
        assert lead is not None
        return lead


async def count(sessions: Sessions, model: Any, lead_id: int) -> int:
    async with sessions() as session:
        found = await session.scalar(
            select(func.count()).select_from(model).where(model.lead_id == lead_id)
        )
        return int(found or 0)


def items(page: str) -> list[str]:
    """The timeline's entries, each as its text (tags dropped, whitespace collapsed)."""
    timeline = page.split('<ol class="timeline">', 1)[1].split("</ol>", 1)[0]
    timeline = timeline.split('<li class="older">', 1)[0]
    found = [i.split('">', 1) for i in re.split(r'<li class="item ', timeline)[1:]]
    return [
        " ".join([kind, *html.unescape(re.sub(r"<[^>]+>", " ", rest)).split()])
        for kind, rest in found
    ]


def the_item(page: str, *words: str) -> str:
    """The one timeline entry holding every one of ``words``."""
    matches = [i for i in items(page) if all(w in i for w in words)]
    assert len(matches) == 1, (words, items(page))
    return matches[0]


async def page_of(console: ConsoleClient, lead_id: int, status: int = 200) -> str:
    response = await console.get(f"/console/leads/{lead_id}")
    text = await response.text()
    assert response.status == status, text
    return text


async def fill_timeline(sessions: Sessions, lead_id: int) -> None:
    """One of every kind of timeline entry, each with its status."""
    t0 = utcnow() - timedelta(hours=5)

    def at(minutes: int) -> datetime:
        return t0 + timedelta(minutes=minutes)

    async with sessions.begin() as session:
        await transition(
            session,
            lead_id,
            "contacted",
            reason="answered on WhatsApp",
            actor="whatsapp-bot",
            now=at(1),
        )
        session.add_all(
            [
                Message(
                    lead_id=lead_id,
                    channel="whatsapp",
                    direction="in",
                    external_id="wamid.IN1",
                    body="Hi, we are about 120 people",
                    created_at=at(2),
                ),
                Message(
                    lead_id=lead_id,
                    channel="whatsapp",
                    direction="out",
                    external_id="wamid.OUT1",
                    body="When do you need it?",
                    payload={"kind": "buttons", "buttons": [{"id": "asap", "title": "ASAP"}]},
                    created_at=at(3),
                ),
                OutboxItem(
                    key="wa:wamid.IN1:0",
                    lead_id=lead_id,
                    channel="whatsapp",
                    recipient="+14155550100",
                    payload={"text": "When do you need it?"},
                    state="sent",
                    external_id="wamid.OUT1",
                    delivery_status="read",
                    created_at=at(3),
                ),
                Message(
                    lead_id=lead_id,
                    channel="email",
                    direction="out",
                    external_id="<m1@leadbot>",
                    body="Following up on our chat",
                    payload={"subject": "Your demo"},
                    created_at=at(4),
                ),
                OutboxItem(
                    key="lead:touch:email1",
                    lead_id=lead_id,
                    channel="email",
                    recipient="jane@acme.example",
                    payload={"text": "Following up on our chat"},
                    state="sent",
                    external_id="<m1@leadbot>",
                    created_at=at(4),
                ),
                OutboxItem(
                    key="lead:failed",
                    lead_id=lead_id,
                    channel="whatsapp",
                    recipient="+14155550100",
                    payload={"text": "A message Meta refused"},
                    state="failed",
                    error="131026: message undeliverable",
                    created_at=at(5),
                ),
                OutboxItem(
                    key="lead:pending",
                    lead_id=lead_id,
                    channel="whatsapp",
                    recipient="+14155550100",
                    payload={"text": "A message on its way"},
                    state="pending",
                    created_at=at(6),
                ),
                OutboxItem(
                    key="lead:uncertain",
                    lead_id=lead_id,
                    channel="whatsapp",
                    recipient="+14155550100",
                    payload={"text": "A message that timed out"},
                    state="uncertain",
                    error="timeout",
                    created_at=at(7),
                ),
                Touch(
                    lead_id=lead_id,
                    sequence="nurture",
                    step="day2",
                    channel="email",
                    due_at=at(8),
                    sent_at=at(8),
                    status="sent",
                ),
                Touch(
                    lead_id=lead_id,
                    sequence="nurture",
                    step="day3",
                    channel="email",
                    due_at=at(9),
                    status="failed",
                    note="smtp said no",
                ),
                Touch(
                    lead_id=lead_id,
                    sequence="nurture",
                    step="day7",
                    channel="email",
                    due_at=at(10),
                    status="cancelled",
                    note="replied on WhatsApp",
                ),
                Touch(
                    lead_id=lead_id,
                    sequence="reactivation",
                    step="draft",
                    channel="email",
                    due_at=at(11),
                    status="awaiting_approval",
                    needs_approval=True,
                    draft="Hi Jane, still looking for a CRM?",
                ),
                Touch(
                    lead_id=lead_id,
                    sequence="nurture",
                    step="day14",
                    channel="email",
                    due_at=utcnow() + timedelta(days=3),
                    status="pending",
                ),
                Booking(
                    lead_id=lead_id,
                    invitee_uri="https://calendly.example/invitees/1",
                    status="active",
                    start_time=at(60 * 24),
                    created_at=at(12),
                ),
            ]
        )
        await add_note(
            session,
            lead_id,
            kind="note",
            author=ADMIN,
            body="Prefers calls after 4pm",
            now=at(13),
        )


# -- reading --------------------------------------------------------------------------------


async def test_the_page_shows_the_lead_and_every_kind_of_timeline_entry(
    admin: ConsoleClient, sessions: Sessions, team: Team
) -> None:
    lead_id = await new_lead(sessions, owner=team.ana_rep_id, qualification=QUALIFICATION)
    await fill_timeline(sessions, lead_id)
    page = await page_of(admin, lead_id)

    # Contact, owner, stage, attribution, qualification with evidence and versions.
    for text in ("Jane Doe", "Acme", "jane@acme.example", "+14155550100", "Owner:"):
        assert text in page
    assert "<strong>Ana</strong>" in page
    assert 'class="badge stage stage-contacted">Contacted<' in page
    assert "spring-promo" in page and "webform" in page
    assert "we are about 120 people" in html.unescape(page)
    assert "need it by March" in page
    for version in ("b2b_saas v3", "extract-v7", "icp-2026-01"):
        assert version in page
    assert f'href="/console/takeover/{lead_id}"' in page

    # The timeline, newest first, every kind with its status.
    assert "Stage: New → Contacted" in the_item(page, "answered on WhatsApp", "by whatsapp-bot")
    assert the_item(page, "Hi, we are about 120 people").startswith("message-in")
    assert "read" in the_item(page, "When do you need it?").split()
    assert "ASAP" in the_item(page, "When do you need it?")
    assert "sent" in the_item(page, "Following up on our chat", "Subject: Your demo").split()
    assert "131026: message undeliverable" in the_item(page, "A message Meta refused", "failed")
    assert "queued" in the_item(page, "A message on its way").split()
    assert "uncertain" in the_item(page, "A message that timed out").split()
    assert "sent" in the_item(page, "nurture · day2").split()
    assert "smtp said no" in the_item(page, "nurture · day3", "failed")
    assert "replied on WhatsApp" in the_item(page, "nurture · day7", "cancelled")
    assert "still looking for a CRM" in the_item(page, "reactivation · draft", "awaiting approval")
    assert "due " in the_item(page, "nurture · day14", "pending")
    assert "active" in the_item(page, "Call booked").split()
    assert ADMIN in the_item(page, "Note", "Prefers calls after 4pm")
    texts = items(page)
    assert texts[0].startswith("touch") and "day14" in texts[0]  # due in 3 days: newest
    assert "Created in New" in texts[-1]  # the lead's first entry: oldest


async def test_an_unknown_lead_is_404_and_a_broken_cursor_400(
    admin: ConsoleClient, sessions: Sessions
) -> None:
    await page_of(admin, 999_999, status=404)
    lead_id = await new_lead(sessions)
    response = await admin.get(f"/console/leads/{lead_id}?before=yesterday")
    assert response.status == 400


async def test_the_timeline_is_bounded_and_pages_back_without_gaps(
    admin: ConsoleClient, sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lead_page, "TIMELINE_LIMIT", 3)
    lead_id = await new_lead(sessions)
    same = utcnow() - timedelta(hours=1)  # one instant: the order falls back on ids
    async with sessions.begin() as session:
        for n in range(7):
            await add_note(session, lead_id, kind="note", author=ADMIN, body=f"note {n}", now=same)
        for n in range(2):  # another source at that instant: after the notes, by source
            session.add(
                Message(
                    lead_id=lead_id,
                    channel="email",
                    direction="in",
                    body=f"mail {n}",
                    created_at=same,
                )
            )
    seen: list[str] = []
    page = await page_of(admin, lead_id)
    while True:
        shown = items(page)
        assert len(shown) <= 3
        seen += shown
        older = re.search(r'hx-get="([^"]+)"', page)
        if older is None:
            break
        response = await admin.get(html.unescape(older.group(1)))  # the htmx partial
        assert response.status == 200
        page = '<ol class="timeline">' + await response.text() + "</ol>"
    notes = [found.group(1) for s in seen if (found := re.search(r"Note (note \d)", s))]
    assert notes == [f"note {n}" for n in reversed(range(7))], seen
    assert ["mail 1" in s for s in seen[7:9]] == [True, False]
    assert "mail 0" in seen[8]
    assert "Created in New" in seen[-1] and len(seen) == 10


# -- who may act ------------------------------------------------------------------------------

ACTIONS: list[tuple[str, dict[str, str]]] = [
    ("stage", {"to": "contacted", "from": "new", "version": "1"}),
    ("stage", {"to": "lost", "from": "new", "version": "1", "reason": "no budget"}),
    ("owner", {"rep_id": "0", "owner_seen": ""}),
    ("notes", {"body": "mine now"}),
    ("bot", {"paused": "1"}),
    ("opt-out", {}),
    ("erase", {}),
]


async def test_a_rep_reads_another_reps_lead_but_every_action_is_refused(
    rep: ConsoleClient, sessions: Sessions, team: Team
) -> None:
    lead_id = await new_lead(sessions, owner=team.bo_rep_id)
    page = await page_of(rep, lead_id)
    assert "Jane Doe" in page and "<strong>Bo</strong>" in page
    assert f"/console/leads/{lead_id}/stage" not in page
    assert "only they or an admin can change it" in page
    for path, form in ACTIONS:
        data = {**form, "rep_id": str(team.ana_rep_id)} if path == "owner" else form
        response = await rep.post(f"/console/leads/{lead_id}/{path}", data)
        assert response.status == 403, (path, await response.text())
    lead = await read_lead(sessions, lead_id)
    assert (lead.stage, lead.owner_rep_id, lead.bot_paused) == ("new", team.bo_rep_id, False)
    assert lead.opted_out_at is None and lead.erased_at is None
    assert await count(sessions, LeadNote, lead_id) == 0


async def test_a_rep_acts_on_unowned_leads_and_their_own(
    rep: ConsoleClient, sessions: Sessions, team: Team
) -> None:
    unowned = await new_lead(sessions)
    response = await rep.post(f"/console/leads/{unowned}/notes", {"body": "Called, no answer"})
    assert response.status == 200 and "Note added." in await response.text()
    own = await new_lead(sessions, email="max@acme.example", phone=None, owner=team.ana_rep_id)
    response = await rep.post(
        f"/console/leads/{own}/stage", {"to": "contacted", "from": "new", "version": "1"}
    )
    assert response.status == 200 and "Stage moved." in await response.text()
    assert (await read_lead(sessions, own)).stage == "contacted"


async def test_only_admins_and_the_owner_may_erase(
    rep: ConsoleClient, sessions: Sessions, team: Team
) -> None:
    unowned = await new_lead(sessions)
    assert "/erase" not in await page_of(rep, unowned)
    response = await rep.post(f"/console/leads/{unowned}/erase")
    assert response.status == 403
    assert (await read_lead(sessions, unowned)).erased_at is None


async def test_actions_need_the_csrf_token(admin: ConsoleClient, sessions: Sessions) -> None:
    lead_id = await new_lead(sessions)
    response = await admin.client.post(
        f"/console/leads/{lead_id}/notes", data={"body": "x", "csrf_token": "forged"}
    )
    assert response.status == 403
    assert await count(sessions, LeadNote, lead_id) == 0


# -- moving the stage ---------------------------------------------------------------------------


async def test_only_allowed_moves_are_offered_and_others_refused(
    admin: ConsoleClient, sessions: Sessions
) -> None:
    lead_id = await new_lead(sessions)
    page = await page_of(admin, lead_id)
    offered = set(re.findall(r'name="to" value="(\w+)"', page))
    assert offered == {"contacted", "lost"}  # new → contacted | lost, nothing else
    response = await admin.post(
        f"/console/leads/{lead_id}/stage", {"to": "won", "from": "new", "version": "1"}
    )
    assert response.status == 409
    assert "cannot move from new to won" in await response.text()
    assert (await read_lead(sessions, lead_id)).stage == "new"
    assert await count(sessions, StageEvent, lead_id) == 1  # the creation only


async def test_a_move_is_audited_with_the_users_email(
    admin: ConsoleClient, sessions: Sessions
) -> None:
    lead_id = await new_lead(sessions)
    response = await admin.post(
        f"/console/leads/{lead_id}/stage",
        {"to": "contacted", "from": "new", "version": "1", "reason": "called them"},
    )
    assert response.status == 200
    assert str(response.url).endswith(f"/console/leads/{lead_id}?done=moved")
    async with sessions() as session:
        event = await session.scalar(
            select(StageEvent).where(StageEvent.lead_id == lead_id).order_by(StageEvent.id.desc())
        )
    assert event is not None
    assert (event.from_stage, event.to_stage, event.actor, event.reason) == (
        "new",
        "contacted",
        ADMIN,
        "called them",
    )
    page = await response.text()
    assert f"by {ADMIN}" in the_item(page, "Stage: New → Contacted", "called them")
    assert set(re.findall(r'name="to" value="(\w+)"', page)) == {"qualified", "dormant", "lost"}


async def test_a_stale_move_is_refused_and_says_so(
    admin: ConsoleClient, sessions: Sessions
) -> None:
    lead_id = await new_lead(sessions)
    page = await page_of(admin, lead_id)
    version = re.search(r'name="version" value="(\d+)"', page).group(1)  # type: ignore[union-attr]
    async with sessions.begin() as session:  # someone else moves it meanwhile
        await transition(session, lead_id, "contacted", reason=None, actor="bo", now=utcnow())
    response = await admin.post(
        f"/console/leads/{lead_id}/stage",
        {"to": "lost", "from": "new", "version": version, "reason": "no budget"},
    )
    text = html.unescape(await response.text())
    assert response.status == 409
    assert "changed while you were looking at it: it is contacted now" in text
    assert "Nothing was moved" in text
    lead = await read_lead(sessions, lead_id)
    assert (lead.stage, lead.lost_reason) == ("contacted", None)


async def test_lost_needs_a_reason(admin: ConsoleClient, sessions: Sessions) -> None:
    lead_id = await new_lead(sessions)
    path = f"/console/leads/{lead_id}/stage"
    move = {"to": "lost", "from": "new", "version": "1"}
    for reason in ("", "   "):
        response = await admin.post(path, {**move, "reason": reason})
        assert response.status == 422
        assert "needs a reason" in await response.text()
    assert (await read_lead(sessions, lead_id)).stage == "new"
    response = await admin.post(path, {**move, "reason": "went with a competitor"})
    assert response.status == 200
    page = await response.text()
    assert "Lost: went with a competitor" in page
    lead = await read_lead(sessions, lead_id)
    assert (lead.stage, lead.lost_reason) == ("lost", "went with a competitor")


# -- owner, notes, the bot ----------------------------------------------------------------------


async def test_assigning_an_owner_is_fenced_and_noted(
    admin: ConsoleClient, sessions: Sessions, team: Team
) -> None:
    lead_id = await new_lead(sessions)
    path = f"/console/leads/{lead_id}/owner"
    response = await admin.post(path, {"rep_id": str(team.ana_rep_id), "owner_seen": ""})
    assert response.status == 200 and "Owner changed." in await response.text()
    assert (await read_lead(sessions, lead_id)).owner_rep_id == team.ana_rep_id
    assert ADMIN in the_item(await response.text(), "Owner: nobody → Ana")
    # A form drawn before that change: refused, nothing changed.
    response = await admin.post(path, {"rep_id": str(team.bo_rep_id), "owner_seen": ""})
    assert response.status == 409
    assert "Ana owns it now" in await response.text()
    assert (await read_lead(sessions, lead_id)).owner_rep_id == team.ana_rep_id
    response = await admin.post(path, {"rep_id": "99999", "owner_seen": str(team.ana_rep_id)})
    assert response.status == 422


async def test_a_note_appears_on_the_timeline(admin: ConsoleClient, sessions: Sessions) -> None:
    lead_id = await new_lead(sessions)
    response = await admin.post(
        f"/console/leads/{lead_id}/notes", {"body": "Budget <b>approved</b> in Q3"}
    )
    page = await response.text()
    assert "Budget &lt;b&gt;approved&lt;/b&gt; in Q3" in page  # escaped, never markup
    assert ADMIN in the_item(page, "Note", "Budget <b>approved</b> in Q3")
    async with sessions() as session:
        [note] = await list_notes(session, lead_id)
    assert (note.kind, note.author, note.body) == ("note", ADMIN, "Budget <b>approved</b> in Q3")
    response = await admin.post(f"/console/leads/{lead_id}/notes", {"body": "  "})
    assert response.status == 422


async def test_pausing_and_resuming_the_bot(admin: ConsoleClient, sessions: Sessions) -> None:
    lead_id = await new_lead(sessions, human_requested_at=utcnow())
    path = f"/console/leads/{lead_id}/bot"
    response = await admin.post(path, {"paused": "1"})
    assert "The bot is paused" in await response.text()
    assert (await read_lead(sessions, lead_id)).bot_paused is True
    response = await admin.post(path, {"paused": "1"})
    assert "Nothing to change" in await response.text()
    response = await admin.post(path, {"paused": "0"})
    page = await response.text()
    lead = await read_lead(sessions, lead_id)
    assert (lead.bot_paused, lead.human_requested_at) == (False, None)
    assert ADMIN in the_item(page, "Bot paused") and ADMIN in the_item(page, "Bot resumed")


# -- opting out, erasing ----------------------------------------------------------------------


async def test_marking_opted_out_suppresses_and_cancels_follow_ups(
    admin: ConsoleClient, sessions: Sessions
) -> None:
    lead_id = await new_lead(sessions)
    async with sessions.begin() as session:
        session.add(
            Touch(
                lead_id=lead_id,
                sequence="nurture",
                step="day3",
                channel="email",
                due_at=utcnow() + timedelta(days=1),
                status="pending",
            )
        )
    page = await page_of(admin, lead_id)
    assert f'action="/console/leads/{lead_id}/opt-out" data-confirm=' in page
    response = await admin.post(f"/console/leads/{lead_id}/opt-out")
    page = await response.text()
    assert "Marked opted out" in page and "opted out</span>" in page
    lead = await read_lead(sessions, lead_id)
    assert lead.opted_out_at is not None
    async with sessions() as session:
        suppressed = set(await session.scalars(select(Suppression.address)))
        touch = await session.scalar(select(Touch).where(Touch.lead_id == lead_id))
    assert {"jane@acme.example", "+14155550100"} <= suppressed
    assert touch is not None and touch.status == "cancelled"
    assert ADMIN in the_item(page, "Marked opted out")


async def test_the_owner_erases_the_person(
    rep: ConsoleClient, sessions: Sessions, team: Team
) -> None:
    lead_id = await new_lead(sessions, owner=team.ana_rep_id, qualification=QUALIFICATION)
    await fill_timeline(sessions, lead_id)
    page = await page_of(rep, lead_id)
    assert f'action="/console/leads/{lead_id}/erase" data-confirm=' in page
    response = await rep.post(f"/console/leads/{lead_id}/erase")
    assert response.status == 200
    page = await response.text()
    assert "The person&#39;s data was erased" in page
    assert f"Erased lead #{lead_id}" in page
    for gone in ("Jane Doe", "jane@acme.example", "we are about 120", "Prefers calls", "Acme"):
        assert gone not in html.unescape(page), gone
    kinds = {i.split()[0] for i in items(page)}
    assert kinds == {"stage"}  # the stage history only
    assert f"by {REP}" in the_item(page, "Erased")
    assert f"/console/leads/{lead_id}/notes" not in page  # no more actions
    lead = await read_lead(sessions, lead_id)
    assert lead.erased_at is not None and lead.email is None and lead.name is None
    assert await count(sessions, Message, lead_id) == 0
    assert await count(sessions, LeadNote, lead_id) == 0
    response = await rep.post(f"/console/leads/{lead_id}/notes", {"body": "hello?"})
    assert response.status == 409
    assert await count(sessions, LeadNote, lead_id) == 0


async def test_another_rep_is_told_who_owns_the_lead(
    console_client: Any, team: Team, sessions: Sessions, aiohttp_client: Any
) -> None:
    bo = ConsoleClient(await aiohttp_client(console_client.server))
    assert (await bo.login(OTHER_REP)).status == 200
    lead_id = await new_lead(sessions, owner=team.ana_rep_id)
    page = await page_of(bo, lead_id)
    assert "Ana owns this lead" in page
