"""Review of the console: bad input gets a clear 4xx page, never a 500. Ids too big for a
64-bit column or not ASCII digits, and NUL characters (PostgreSQL refuses them in text)
in form fields."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.bot.email_support import make_lead
from tests.console.support import ADMIN, ConsoleClient, Team, csrf_of
from tests.console.test_approvals import held_draft

Sessions = async_sessionmaker[AsyncSession]
HUGE = "9" * 25


@pytest.mark.parametrize(
    "path", [f"/console/takeover/{HUGE}", f"/console/takeover/{2**63}/events"]
)
async def test_a_take_over_page_of_an_impossible_lead_is_not_found(
    admin: ConsoleClient, path: str
) -> None:
    response = await admin.get(path, allow_redirects=False)
    assert response.status == 404
    assert "text/html" in response.headers["Content-Type"]


@pytest.mark.parametrize(
    ("action", "form"),
    [("take", {"from_user": HUGE}), ("take", {"from_user": "²"}), ("hand-back", {"owner": "²"})],
)
async def test_take_over_forms_with_bad_user_ids_are_refused(
    admin: ConsoleClient, sessions: Sessions, action: str, form: dict[str, str]
) -> None:
    lead = await make_lead(sessions)
    response = await admin.post(f"/console/takeover/{lead.id}/{action}", form)
    assert response.status == 400
    assert "user id" in await response.text()


async def test_taking_an_impossible_lead_is_not_found(admin: ConsoleClient) -> None:
    response = await admin.post(f"/console/takeover/{HUGE}/take", {})
    assert response.status == 404


async def test_a_note_and_a_reason_with_nul_characters_are_stored_without_them(
    admin: ConsoleClient, sessions: Sessions
) -> None:
    lead = await make_lead(sessions)
    note = await admin.post(f"/console/leads/{lead.id}/notes", {"body": "call\x00 back"})
    assert note.status == 200
    assert "call back" in await note.text()
    move = await admin.post(
        f"/console/leads/{lead.id}/stage",
        {"to": "lost", "from": "new", "version": str(lead.version), "reason": "no\x00 budget"},
    )
    assert move.status == 200
    assert "Lost: no budget" in await move.text()


async def test_approving_or_skipping_with_nul_characters_is_no_error(
    admin: ConsoleClient, team: Team, console_client: TestClient[Any, Any], sessions: Sessions
) -> None:
    first = await held_draft(console_client, sessions, email="a@x.example", owner=None)
    second = await held_draft(console_client, sessions, email="b@x.example", owner=None)
    approved = await admin.post(f"/console/approvals/{first.id}/approve", {"text": "Hi\x00 there"})
    assert approved.status == 200
    skipped = await admin.post(f"/console/approvals/{second.id}/skip", {"reason": "not\x00 now"})
    assert skipped.status == 200
    assert "not now" in await skipped.text()


async def test_a_login_with_a_nul_in_the_email_is_a_wrong_login(
    console_client: TestClient[Any, Any], team: Team
) -> None:
    form = await console_client.get("/console/login")
    response = await console_client.post(
        "/console/login",
        data={
            "csrf_token": csrf_of(await form.text()),
            "email": ADMIN.replace("@", "\x00@"),
            "password": "whatever it is",
        },
    )
    assert response.status == 401
    assert re.search("Wrong email or password", await response.text())
