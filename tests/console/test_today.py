"""The Today page (issue 14, item 6): its figures and charts match what is stored."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.console import today
from scheduler.pipeline import users
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.pipeline.stages import transition
from scheduler.store.conversations import record_messages
from scheduler.store.events import booking
from scheduler.store.touches import insert_touches
from tests.console.support import ConsoleClient

Sessions = async_sessionmaker[AsyncSession]
# The page's clock: mid-afternoon, so "today" began 15.5 hours ago and ends in 8.5.
NOW = datetime(2026, 12, 7, 15, 30, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)


async def lead(
    sessions: Sessions,
    key: str,
    created: datetime,
    *,
    moves: tuple[str, ...] = (),
    attribution: dict[str, str] | None = None,
    first_out: timedelta | None = None,
    asked: bool = False,
    taken_by: int | None = None,
) -> int:
    """A lead created at ``created`` (moved through ``moves``), its first outbound message
    ``first_out`` after creation (an inbound one before it, a later outbound one after)."""
    async with sessions.begin() as session:
        data = LeadIn(name=key, email=f"{key}@leads.example", attribution=attribution or {})
        found = (await intake(session, data, default_region="US", now=created)).lead
        if asked:
            found.human_requested_at = created + H
            found.taken_by_user_id = taken_by
        for n, move in enumerate(moves, start=1):
            reason = "went quiet" if move == "lost" else None
            at = created + n * H
            await transition(session, found.id, move, reason=reason, actor="test", now=at)
        if first_out is not None:
            message: dict[str, Any] = {"lead_id": found.id, "channel": "email", "payload": {}}
            await record_messages(
                session,
                [
                    message | {"direction": "in", "created_at": created + first_out / 2},
                    message | {"direction": "out", "created_at": created + first_out},
                    message | {"direction": "out", "created_at": created + first_out + 2 * H},
                ],
            )
        return found.id


def touch(lead_id: int, step: str, due: datetime, status: str = "pending") -> dict[str, Any]:
    return {
        "lead_id": lead_id,
        "sequence": "new_lead",
        "step": step,
        "cycle": 0,
        "channel": "email",
        "due_at": due,
        "status": status,
        "meta": {},
        "created_at": NOW - 3 * D,
    }


async def book(
    sessions: Sessions, lead_id: int, n: int, at: datetime, status: str = "active"
) -> None:
    async with sessions.begin() as session:
        await booking(
            session,
            {
                "lead_id": lead_id,
                "invitee_uri": f"https://api.calendly.com/invitees/{n}",
                "status": status,
                "created_at": at,
                "payload": {},
            },
        )


async def seed(sessions: Sessions) -> None:
    """Leads of today, of the week, older; messages, touches and bookings around them."""
    async with sessions() as session:
        admin_id = next(u.id for u in await users.list_users(session) if u.role == "admin")
    spring = {"campaign": "fb-spring"}
    # Created today: one touched after 30 s, one not touched yet (and waiting for a human).
    a = await lead(sessions, "a", NOW - H, moves=("contacted",), first_out=timedelta(seconds=30))
    await lead(sessions, "b", NOW - 3 * H, asked=True)
    # Earlier this week: touched after 5 min, 2 h, 1 day.
    c = await lead(
        sessions,
        "c",
        NOW - 2 * D,
        moves=("contacted", "qualified"),
        first_out=5 * timedelta(minutes=1),
        attribution=spring,
    )
    d = await lead(
        sessions,
        "d",
        NOW - 3 * D,
        moves=("contacted", "qualified", "proposal_sent", "won"),
        first_out=2 * H,
        attribution={"utm_campaign": "newsletter"},
        asked=True,
    )
    e = await lead(
        sessions, "e", NOW - 6 * D, moves=("lost",), first_out=D, asked=True, taken_by=admin_id
    )
    # Older: outside the week (its quick touch does not count), inside the 30 days.
    f = await lead(sessions, "f", NOW - 10 * D, first_out=timedelta(minutes=1))
    # Outside the 30 days: its recent move is not part of the chart's cohort.
    g = await lead(sessions, "g", NOW - 40 * D, attribution=spring)
    async with sessions.begin() as session:
        await transition(session, g, "contacted", reason=None, actor="test", now=NOW - D)
        await insert_touches(
            session,
            [
                touch(a, "day1", NOW - D),  # overdue: still due today
                touch(c, "day3", NOW + 2 * H),
                touch(d, "day3", NOW.replace(hour=23, minute=59)),
                touch(e, "day3", NOW + 9 * H),  # tomorrow
                touch(f, "day7", NOW + H, status="cancelled"),
                touch(f, "day1", NOW - 2 * D, status="awaiting_approval"),
                touch(g, "day1", NOW - 2 * D, status="awaiting_approval"),
                touch(g, "day3", NOW - 3 * D, status="sent"),
            ],
        )
    await book(sessions, c, 1, NOW - 2 * H)  # today
    await book(sessions, c, 2, NOW - 2 * D)
    await book(sessions, d, 3, NOW - 5 * D)
    await book(sessions, f, 4, NOW - 20 * D)  # in the chart only
    await book(sessions, g, 5, NOW - H, status="canceled")  # counts nowhere
    await book(sessions, g, 6, NOW - 40 * D)  # too old for anything


def figures(page: str) -> dict[str, str]:
    return dict(re.findall(r'data-figure="(\w+)">([^<]*)<', page))


def bars(page: str, chart: str) -> list[tuple[str, int, int, str]]:
    """``(label, value, bar width, value text)`` of a chart's bars, top to bottom."""
    section = re.search(
        rf'<section class="chart-card" id="chart-{chart}">(.*?)</section>', page, re.S
    )
    assert section, f"no chart {chart}"
    return [
        (label, int(value), int(width), text)
        for label, value, width, text in re.findall(
            r'<g class="bar" data-label="([^"]*)" data-value="(\d+)">.*?'
            r'<rect [^>]*width="(\d+)".*?<text class="value"[^>]*>([^<]*)</text>',
            section.group(1),
            re.S,
        )
    ]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """The Today page's clock, fixed at :data:`NOW`."""
    monkeypatch.setattr(today, "utcnow", lambda: NOW)
    return NOW


async def test_the_figures_match_the_stored_leads_touches_and_bookings(
    admin: ConsoleClient, sessions: Sessions, clock: datetime
) -> None:
    await seed(sessions)
    response = await admin.get("/console/")
    page = await response.text()
    assert response.status == 200, page
    assert figures(page) == {
        "new_today": "2",
        "new_week": "5",
        # Delays 30 s, 5 min, 2 h, 1 d (the unanswered lead is left out): nearest rank.
        "first_touch_p50": "5 min",
        "first_touch_p99": "1 d",
        "first_touched": "4",
        "untouched": "1",
        "waiting_for_human": "2",  # asked and not taken (a rep has the third)
        "drafts_waiting": "2",
        "follow_ups_due": "3",  # pending, due before midnight, the overdue one too
        "bookings_today": "1",
        "bookings_week": "3",  # active ones only
    }
    assert 'href="/console/takeover"' in page and 'href="/console/approvals"' in page
    assert 'style="' not in page and "<script>" not in page  # the CSP allows neither


async def test_the_charts_are_svg_bars_with_their_values_as_text(
    admin: ConsoleClient, sessions: Sessions, clock: datetime
) -> None:
    await seed(sessions)
    page = await (await admin.get("/console/")).text()
    assert page.count("<svg") == 2
    # Of the 6 leads created in the 30 days: how many reached each stage.
    longest = today.CHART_WIDTH - today.LABEL_WIDTH - today.VALUE_ROOM
    assert bars(page, "stages") == [
        ("New", 6, longest, "6"),
        ("Contacted", 3, longest // 2, "3 (50%)"),
        ("Qualified", 2, round(longest / 3), "2 (33%)"),
        ("Proposal sent", 1, round(longest / 6), "1 (17%)"),
        ("Won", 1, round(longest / 6), "1 (17%)"),
        ("Lost", 1, round(longest / 6), "1 (17%)"),
        ("Dormant", 0, 0, "0 (0%)"),
    ]
    assert "Of the 6 leads created in the last 30 days" in page
    # Active bookings of the 30 days by the lead's campaign (utm_campaign counts), most first.
    assert bars(page, "campaigns") == [
        ("fb-spring", 2, longest, "2"),
        ("newsletter", 1, longest // 2, "1"),
        ("no campaign", 1, longest // 2, "1"),
    ]


async def test_an_empty_store_reads_as_nothing_yet(admin: ConsoleClient, clock: datetime) -> None:
    page = await (await admin.get("/console/")).text()
    found = figures(page)
    assert found["new_today"] == found["waiting_for_human"] == found["bookings_week"] == "0"
    assert "first_touch_p50" not in found
    assert "No lead of the last 7 days has had a first message yet" in page
    assert "<svg" in page  # the stage chart shows its zero bars
    assert "Nothing yet in the last 30 days" in page  # no booking: no campaign chart


def test_percentiles_are_nearest_rank() -> None:
    values = [timedelta(seconds=s) for s in range(1, 101)]
    assert today.percentile(values, 0.5) == timedelta(seconds=50)
    assert today.percentile(values, 0.99) == timedelta(seconds=99)
    assert today.percentile(values[:1], 0.99) == timedelta(seconds=1)
    assert today.percentile([], 0.5) is None


def test_a_bar_with_a_value_is_never_invisible() -> None:
    chart = today.bar_chart(
        "x", "X", [("big", 10_000, "10,000"), ("tiny", 1, "1"), ("none", 0, "0")]
    )
    assert [bar.width for bar in chart.bars][1:] == [2, 0]
    assert chart.height == 3 * today.ROW
