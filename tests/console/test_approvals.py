"""The approvals page: drafts held for a person, read, edited, approved or skipped, one at a
time or in bulk, through the sweeper's rules (the same as the one-click links and the API).

Drafts are made the real way: a lead's sequence is started and swept, and the sweeper holds
the step that needs approval (a hot lead's first reply; a reactivation note).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.http.followups import CADENCE, SWEEPER
from scheduler.followups.touches import start_sequence
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.store.models import Lead, OutboxItem, Touch
from tests.console.support import ADMIN, REP, ConsoleClient, Team

Sessions = async_sessionmaker[AsyncSession]
# A working-day morning: the held steps are due at once, later steps far off.
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


async def held_draft(
    client: TestClient[Any, Any],
    sessions: Sessions,
    *,
    email: str,
    owner: int | None,
    name: str = "Marta Keller",
    company: str = "Alpenbau Gruppe",
    sequence: str = "new_lead",
) -> Touch:
    """A hot lead whose first step of ``sequence`` the sweeper drafted and held."""
    app = client.app
    assert app is not None
    async with sessions.begin() as session:
        lead = (
            await intake(
                session,
                LeadIn(email=email, name=name, company=company),
                default_region="DE",
                now=NOW,
            )
        ).lead
        lead.owner_rep_id = owner
        lead.qualification = {"tier": "hot"}
        await session.flush()
        await start_sequence(session, lead.id, sequence, cadence=app[CADENCE], now=NOW)
        lead_id = lead.id
    await app[SWEEPER].sweep(NOW)
    async with sessions() as session:
        touch = await session.scalar(
            select(Touch).where(Touch.lead_id == lead_id, Touch.status == "awaiting_approval")
        )
    assert touch is not None and touch.draft
    return touch


async def touch_of(sessions: Sessions, touch_id: int) -> Touch:
    async with sessions() as session:
        return await session.get_one(Touch, touch_id)


async def outbox_of(sessions: Sessions, lead_id: int) -> list[OutboxItem]:
    async with sessions() as session:
        rows = await session.scalars(
            select(OutboxItem).where(OutboxItem.lead_id == lead_id).order_by(OutboxItem.id)
        )
        return list(rows)


async def test_the_queue_shows_each_draft_its_lead_why_and_since_when(
    admin: ConsoleClient, rep: ConsoleClient, team: Team, sessions: Sessions
) -> None:
    mine = await held_draft(admin.client, sessions, email="m.keller@alpenbau.de", owner=None)
    bos = await held_draft(
        admin.client,
        sessions,
        email="jo@north.example",
        owner=team.bo_rep_id,
        name="Jo North",
        company="North AG",
        sequence="reactivation",
    )

    page = await admin.get("/console/approvals")
    assert page.status == 200
    html = await page.text()
    assert "Marta Keller" in html and "Alpenbau Gruppe" in html and "Jo North" in html
    assert "Hot lead: a person approves the first reply" in html
    assert "Every reactivation draft (reactivation · reactivate)" in html
    assert "Still on your list, Jo?" in html  # the email's subject
    assert "owner: Bo" in html and "owner: nobody yet" in html
    assert "waiting " in html and 'class="badge">email<' in html
    assert html.index("Marta Keller") < html.index("Jo North")  # hot first replies first
    assert f'value="{mine.id}" form="bulk"' in html

    # Ana sees unowned leads' drafts, not Bo's.
    html = await (await rep.get("/console/approvals")).text()
    assert "Marta Keller" in html and "Jo North" not in html
    assert f'value="{bos.id}"' not in html


async def test_an_edited_draft_is_sent_with_the_edits_and_the_approver(
    rep: ConsoleClient, team: Team, sessions: Sessions
) -> None:
    touch = await held_draft(rep.client, sessions, email="m.keller@alpenbau.de", owner=None)
    edited = "Hi Marta,\r\nthanks for the details: shall we talk on Thursday?\r\nAna"

    page = await rep.post(f"/console/approvals/{touch.id}/approve", {"text": edited})
    assert page.status == 200, await page.text()
    html = await page.text()
    assert "Approved</strong>: Marta Keller (Alpenbau Gruppe)" in html and "— sent" in html
    assert f'value="{touch.id}" form="bulk"' not in html  # no longer waiting

    sent = await touch_of(sessions, touch.id)
    text = edited.replace("\r\n", "\n")
    assert (sent.status, sent.draft, sent.approved_by) == ("sent", text, REP)
    assert sent.meta["edited_by"] == REP
    [row] = await outbox_of(sessions, touch.lead_id)
    assert row.payload["text"] == text and row.recipient == "m.keller@alpenbau.de"
    assert row.state == "sent"


async def test_an_untouched_draft_goes_as_drafted(
    rep: ConsoleClient, team: Team, sessions: Sessions
) -> None:
    """A browser sends the textarea back with CRLF line breaks: that is not an edit."""
    touch = await held_draft(rep.client, sessions, email="m.keller@alpenbau.de", owner=None)
    assert touch.draft and "\n" in touch.draft
    page = await rep.post(
        f"/console/approvals/{touch.id}/approve", {"text": touch.draft.replace("\n", "\r\n")}
    )
    assert page.status == 200
    sent = await touch_of(sessions, touch.id)
    assert sent.status == "sent" and sent.draft == touch.draft
    assert "edited_by" not in sent.meta

    other = await held_draft(rep.client, sessions, email="x@alpenbau.de", owner=None, name="X")
    page = await rep.post(f"/console/approvals/{other.id}/approve", {"as_is": "1", "text": ""})
    assert page.status == 200
    assert (await touch_of(sessions, other.id)).draft == other.draft


async def test_an_empty_draft_is_refused(
    rep: ConsoleClient, team: Team, sessions: Sessions
) -> None:
    touch = await held_draft(rep.client, sessions, email="m.keller@alpenbau.de", owner=None)
    page = await rep.post(f"/console/approvals/{touch.id}/approve", {"text": " \r\n "})
    assert page.status == 400
    assert "the draft is empty" in await page.text()
    assert (await touch_of(sessions, touch.id)).status == "awaiting_approval"


async def test_a_draft_approved_twice_is_sent_once(
    rep: ConsoleClient, team: Team, sessions: Sessions
) -> None:
    touch = await held_draft(rep.client, sessions, email="m.keller@alpenbau.de", owner=None)
    first = await rep.post(f"/console/approvals/{touch.id}/approve", {"as_is": "1"})
    assert first.status == 200
    again = await rep.post(f"/console/approvals/{touch.id}/approve", {"text": "Other text"})
    assert again.status == 409
    html = await again.text()
    assert "Already handled</strong>" in html
    assert f"it is sent by {REP}; nothing was sent" in html
    assert len(await outbox_of(sessions, touch.lead_id)) == 1
    assert (await touch_of(sessions, touch.id)).draft == touch.draft


async def test_a_lead_that_replied_meanwhile_is_not_written_to(
    rep: ConsoleClient, team: Team, sessions: Sessions
) -> None:
    touch = await held_draft(rep.client, sessions, email="m.keller@alpenbau.de", owner=None)
    async with sessions.begin() as session:
        lead = await session.get_one(Lead, touch.lead_id)
        lead.last_inbound_at = datetime.now(UTC)
    page = await rep.post(f"/console/approvals/{touch.id}/approve", {"as_is": "1"})
    assert page.status == 409
    assert "Not sent</strong>" in await page.text()
    assert (await touch_of(sessions, touch.id)).status == "skipped"
    assert await outbox_of(sessions, touch.lead_id) == []


async def test_skipping_needs_a_reason_and_sends_nothing(
    rep: ConsoleClient, team: Team, sessions: Sessions
) -> None:
    touch = await held_draft(rep.client, sessions, email="m.keller@alpenbau.de", owner=None)
    refused = await rep.post(f"/console/approvals/{touch.id}/skip", {"reason": "  "})
    assert refused.status == 400
    assert (await touch_of(sessions, touch.id)).status == "awaiting_approval"

    page = await rep.post(f"/console/approvals/{touch.id}/skip", {"reason": "called her"})
    assert page.status == 200
    assert "Skipped</strong>: Marta Keller (Alpenbau Gruppe)" in await page.text()
    skipped = await touch_of(sessions, touch.id)
    assert skipped.status == "skipped" and skipped.approved_by == REP
    assert skipped.note == f"rejected by {REP}: called her"
    assert await outbox_of(sessions, touch.lead_id) == []
    async with sessions() as session:  # the rest of the cadence goes on
        later = await session.scalars(select(Touch.status).where(Touch.lead_id == touch.lead_id))
        assert sorted(later) == ["pending"] * 4 + ["skipped"]


async def test_bulk_approve_reports_each_draft_and_one_already_handled(
    admin: ConsoleClient, team: Team, sessions: Sessions
) -> None:
    one = await held_draft(admin.client, sessions, email="a@alpenbau.de", owner=None, name="A")
    two = await held_draft(
        admin.client, sessions, email="b@b.example", owner=team.bo_rep_id, name="B", company=""
    )
    app = admin.client.app
    assert app is not None
    await app[SWEEPER].approve(two.id, by="approval link", now=datetime.now(UTC))

    page = await admin.client.post(
        "/console/approvals/bulk",
        data=[
            ("csrf_token", admin.csrf),
            ("touch", str(one.id)),
            ("touch", str(two.id)),
            ("action", "approve"),
        ],
    )
    assert page.status == 200
    html = await page.text()
    assert f'Approved</strong>: A (Alpenbau Gruppe) <span class="muted">(draft {one.id})' in html
    assert f'Already handled</strong>: B <span class="muted">(draft {two.id})' in html
    assert "it is sent by approval link; nothing was sent" in html
    assert (await touch_of(sessions, one.id)).approved_by == ADMIN
    assert len(await outbox_of(sessions, two.lead_id)) == 1


async def test_bulk_skip_uses_the_one_reason(
    admin: ConsoleClient, team: Team, sessions: Sessions
) -> None:
    one = await held_draft(admin.client, sessions, email="a@alpenbau.de", owner=None, name="A")
    two = await held_draft(admin.client, sessions, email="b@b.example", owner=None, name="B")
    form = [("csrf_token", admin.csrf), ("touch", str(one.id)), ("touch", str(two.id))]
    no_reason = await admin.client.post(
        "/console/approvals/bulk", data=[*form, ("action", "skip")]
    )
    assert no_reason.status == 400
    page = await admin.client.post(
        "/console/approvals/bulk", data=[*form, ("action", "skip"), ("reason", "duplicates")]
    )
    assert page.status == 200
    for touch in (one, two):
        skipped = await touch_of(sessions, touch.id)
        assert (skipped.status, skipped.note) == ("skipped", f"rejected by {ADMIN}: duplicates")
    nothing = await admin.client.post(
        "/console/approvals/bulk", data=[("csrf_token", admin.csrf), ("action", "approve")]
    )
    assert nothing.status == 400


async def test_a_rep_cannot_act_on_another_reps_draft(
    rep: ConsoleClient, team: Team, sessions: Sessions
) -> None:
    bos = await held_draft(rep.client, sessions, email="jo@north.example", owner=team.bo_rep_id)
    approve = await rep.post(f"/console/approvals/{bos.id}/approve", {"as_is": "1"})
    assert approve.status == 403
    skip = await rep.post(f"/console/approvals/{bos.id}/skip", {"reason": "mine now"})
    assert skip.status == 403
    bulk = await rep.client.post(
        "/console/approvals/bulk",
        data=[("csrf_token", rep.csrf), ("touch", str(bos.id)), ("action", "approve")],
    )
    assert bulk.status == 200
    assert "Refused</strong>" in await bulk.text()
    assert (await touch_of(sessions, bos.id)).status == "awaiting_approval"
    assert await outbox_of(sessions, bos.lead_id) == []

    mine = await held_draft(rep.client, sessions, email="m@k.example", owner=team.ana_rep_id)
    own = await rep.post(f"/console/approvals/{mine.id}/approve", {"as_is": "1"})
    assert own.status == 200


async def test_a_bulk_post_without_the_csrf_token_is_refused(
    admin: ConsoleClient, team: Team, sessions: Sessions
) -> None:
    touch = await held_draft(admin.client, sessions, email="m.keller@alpenbau.de", owner=None)
    refused = await admin.client.post(
        "/console/approvals/bulk", data=[("touch", str(touch.id)), ("action", "approve")]
    )
    assert refused.status == 403
    assert (await touch_of(sessions, touch.id)).status == "awaiting_approval"
    assert await outbox_of(sessions, touch.lead_id) == []


@pytest.mark.parametrize(
    "path", ["/console/approvals/999999/approve", "/console/approvals/0/skip"]
)
async def test_an_unknown_draft_is_not_found(admin: ConsoleClient, team: Team, path: str) -> None:
    response = await admin.post(path, {"as_is": "1", "reason": "x"})
    assert response.status == 404


async def test_an_empty_queue_says_so(admin: ConsoleClient) -> None:
    html = await (await admin.get("/console/approvals")).text()
    assert "Nothing is waiting for approval." in html


async def test_the_digest_edit_link_puts_its_draft_first(
    admin: ConsoleClient, rep: ConsoleClient, team: Team, sessions: Sessions
) -> None:
    hot = await held_draft(admin.client, sessions, email="m.keller@alpenbau.de", owner=None)
    bos = await held_draft(
        admin.client,
        sessions,
        email="jo@north.example",
        owner=team.bo_rep_id,
        name="Jo North",
        company="North AG",
        sequence="reactivation",
    )
    html = await (await admin.get(f"/console/approvals?touch={bos.id}")).text()
    assert html.index(f'id="draft-{bos.id}"') < html.index(f'id="draft-{hot.id}"')
    # Out of scope, unknown or malformed: the queue as it is.
    html = await (await rep.get(f"/console/approvals?touch={bos.id}")).text()
    assert f'id="draft-{bos.id}"' not in html and f'id="draft-{hot.id}"' in html
    for junk in ("999999", "abc", "-1"):
        page = await admin.get(f"/console/approvals?touch={junk}")
        assert page.status == 200
        html = await page.text()
        assert html.index(f'id="draft-{hot.id}"') < html.index(f'id="draft-{bos.id}"')
