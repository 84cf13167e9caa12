"""Review of the console: a NUL character (PostgreSQL refuses it in text) typed or pasted
into a take-over reply or the script editor is no error. A reply with one used to reach
the prospect and then fail to be recorded, its outbox row stuck in ``sending``."""

from __future__ import annotations

import html
import re

from sqlalchemy import select

from scheduler.store.models import Message
from tests.console.support import ConsoleClient, Team
from tests.console.takeover_support import MakeDesk, make_desk, reply, take
from tests.support.fakes.graph_api import graph_api

__all__ = ["graph_api", "make_desk"]


async def test_a_reply_with_a_nul_goes_out_without_it_and_is_recorded(
    make_desk: MakeDesk,
) -> None:
    desk = await make_desk()
    await desk.prospect().says("hi")
    lead = await desk.lead()
    assert (await take(desk.ana, lead.id)).status == 303
    assert (await reply(desk.ana, lead.id, "Hi\x00 Dana")).status == 303
    assert desk.to_prospect()[-1]["text"]["body"] == "Hi Dana"
    [row] = [r for r in await desk.outbox(lead.id) if r.key.startswith("console:")]
    assert row.state == "sent"
    async with desk.sessions() as session:
        stored = await session.scalar(
            select(Message).where(Message.external_id == row.external_id)
        )
    assert stored is not None and stored.body == "Hi Dana"


async def _source(admin: ConsoleClient) -> str:
    page = await (await admin.get("/console/scripts/b2b_default/edit")).text()
    found = re.search(r'<textarea[^>]*name="source"[^>]*>(.*?)</textarea>', page, re.S)
    assert found, "no editor on the page"
    return html.unescape(found.group(1))


async def test_publishing_a_script_with_a_nul_is_no_error(
    admin: ConsoleClient, team: Team
) -> None:
    source = await _source(admin)
    forms = (
        {"source": source + "\n# note\x00", "version": "9"},
        {"source": source, "version": "10\x00"},
    )
    for form in forms:
        response = await admin.post(
            "/console/scripts/b2b_default/publish", form, allow_redirects=False
        )
        assert response.status == 303, response.status
    listing = await (await admin.get("/console/scripts")).text()
    assert "\x00" not in listing and ">10<" in listing
