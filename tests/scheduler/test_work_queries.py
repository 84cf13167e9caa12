"""Queries that feed work never starve newer rows (issue 12, item 9).

A query that takes the first ``LIMIT`` rows and filters afterwards, or that always reads the
first page, stops handing out work once ``limit`` rows it cannot finish sit at its head.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert

from scheduler.intake.first_touch import FirstTouchConfig, UnprocessedScan, awaiting_first_reply
from scheduler.store.models import Lead, StageEvent, Touch
from tests.scheduler.cadence_support import NOW, Sessions

LIMIT = 200


async def add_leads(sessions: Sessions, n: int) -> list[int]:
    """``n`` new email leads created through the API (bulk, for speed)."""
    async with sessions.begin() as session:
        ids = list(
            await session.scalars(
                insert(Lead)
                .values(
                    [
                        {
                            "token": f"tok{i}",
                            "email": f"lead{i}@example.com",
                            "stage": "new",
                            "attribution": {},
                            "created_at": NOW,
                        }
                        for i in range(n)
                    ]
                )
                .returning(Lead.id)
            )
        )
        await session.execute(
            insert(StageEvent),
            [
                {"lead_id": i, "from_stage": None, "to_stage": "new", "actor": "intake", "at": NOW}
                for i in ids
            ],
        )
    return sorted(ids)


async def test_approval_links_keep_coming_past_the_limit(sessions: Sessions) -> None:
    leads = await add_leads(sessions, LIMIT + 30)
    linked = {"approval_link_sent_at": NOW.isoformat()}
    async with sessions.begin() as session:
        await session.execute(
            insert(Touch),
            [
                {
                    "lead_id": lead_id,
                    "sequence": "new_lead",
                    "step": "first_reply",
                    "cycle": 0,
                    "channel": "email",
                    "due_at": NOW,
                    "status": "awaiting_approval",
                    "needs_approval": True,
                    "attempts": 1,
                    "created_at": NOW,
                    # The oldest LIMIT drafts had their link sent; the rep has not acted yet.
                    "meta": linked if n < LIMIT else {},
                }
                for n, lead_id in enumerate(leads)
            ],
        )
    async with sessions() as session:
        waiting = await awaiting_first_reply(session, "new_lead", "first_reply", limit=LIMIT)
    assert [t.lead_id for t in waiting] == leads[LIMIT:]


async def test_the_safety_scan_reaches_leads_behind_a_page_of_failing_ones(
    sessions: Sessions,
) -> None:
    leads = await add_leads(sessions, 25)
    scan = UnprocessedScan(FirstTouchConfig(), limit=10)
    seen: list[int] = []
    async with sessions() as session:
        for _ in range(3):  # none of them ever gets processed (they keep failing)
            seen += await scan.next(session, NOW + timedelta(minutes=1))
        assert seen == leads
        assert await scan.next(session, NOW + timedelta(minutes=1)) == leads[:10]  # again
