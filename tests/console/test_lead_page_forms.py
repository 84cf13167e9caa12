"""What a prospect wrote in a form (``POST /api/leads`` ``message`` and ``answers``, or a form
webhook) shows on their lead page's timeline, and an erasure removes it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scheduler.pipeline.leads import LeadIn, form_submissions, intake
from scheduler.store.erasure import erase_lead
from scheduler.store.models import utcnow
from tests.console.support import ConsoleClient

Sessions = async_sessionmaker[AsyncSession]


async def test_a_form_submission_is_on_the_timeline(
    admin: ConsoleClient, sessions: Sessions
) -> None:
    data = LeadIn(
        email="rene@dubois.example",
        message="Nous voulons <b>un portail</b>",
        answers={"How big is your team?": "about 40"},
    )
    async with sessions.begin() as session:
        lead_id = (await intake(session, data, default_region="US", now=utcnow())).lead.id
    page = await (await admin.get(f"/console/leads/{lead_id}")).text()
    assert "From a form" in page
    assert "Nous voulons &lt;b&gt;un portail&lt;/b&gt;" in page  # escaped, never markup
    assert "How big is your team?: about 40" in page

    async with sessions.begin() as session:
        await erase_lead(session, lead_id, actor="test", hash_key=b"k" * 32, now=utcnow())
    async with sessions() as session:
        assert await form_submissions(session, lead_id) == []
