"""The pipeline board (issue 14, item 2): columns with counts and cards, filters, search,
keyset paging, "mine", the waiting-for-a-human badge."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.console import board as board_page
from scheduler.pipeline import users
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.pipeline.stages import transition
from scheduler.store import board as board_store
from scheduler.store.leads import store_qualification
from scheduler.store.models import Stage
from tests.console.support import ConsoleClient, Team

Sessions = async_sessionmaker[AsyncSession]
# The moves that take a new lead to each stage.
PATHS: dict[str, list[str]] = {
    "new": [],
    "contacted": ["contacted"],
    "qualified": ["contacted", "qualified"],
    "proposal_sent": ["contacted", "qualified", "proposal_sent"],
    "won": ["contacted", "qualified", "proposal_sent", "won"],
    "lost": ["lost"],
    "dormant": ["contacted", "dormant"],
}


async def add_lead(
    sessions: Sessions,
    name: str,
    *,
    created: datetime,
    stage: str = "new",
    email: str | None = None,
    phone: str | None = None,
    company: str | None = None,
    source: str | None = None,
    attribution: dict[str, str] | None = None,
    owner: int | None = None,
    tier: str | None = None,
    waiting_since: datetime | None = None,
    taken_by: int | None = None,
) -> int:
    """A lead made by intake and moved by the stage machine, as the service would."""
    async with sessions.begin() as session:
        data = LeadIn(
            name=name,
            email=email or f"{name.split(maxsplit=1)[0].lower()}@leads.example",
            phone=phone,
            company=company,
            source=source,
            attribution=attribution or {},
        )
        lead = (await intake(session, data, default_region="US", now=created)).lead
        lead.owner_rep_id = owner
        lead.human_requested_at = waiting_since
        lead.taken_by_user_id = taken_by
        for move in PATHS[stage]:
            reason = "no budget" if move == "lost" else None
            await transition(session, lead.id, move, reason=reason, actor="test", now=created)
        if tier is not None:
            await store_qualification(
                session, lead.id, qualification={"tier": tier}, enrichment={}, now=created
            )
        return lead.id


@dataclass(frozen=True)
class Shown:
    """What a board page showed: each column's count and card ids, top to bottom."""

    counts: dict[str, int]
    cards: dict[str, list[int]]
    page: str

    def ids(self) -> set[int]:
        return {lead for column in self.cards.values() for lead in column}

    def card(self, lead_id: int) -> str:
        found = re.search(
            rf'<li class="lead-card" data-lead="{lead_id}">(.*?)</li>', self.page, re.S
        )
        assert found, f"no card of lead {lead_id}"
        return found.group(1)


_COLUMN = re.compile(
    r'<section class="column" id="col-(\w+)".*?<span class="count">([\d,]+)</span>(.*?)</section>',
    re.S,
)


def shown(page: str) -> Shown:
    counts, cards = {}, {}
    for stage, count, body in _COLUMN.findall(page):
        counts[stage] = int(count.replace(",", ""))
        cards[stage] = [int(i) for i in re.findall(r'data-lead="(\d+)"', body)]
    return Shown(counts, cards, page)


async def board(console: ConsoleClient, query: str = "") -> Shown:
    response = await console.get(f"/console/board{query}")
    page = await response.text()
    assert response.status == 200, page
    return shown(page)


def more_links(fragment: str) -> tuple[str | None, str | None]:
    """The "more" link's fragment URL (htmx) and page URL (no JavaScript), if any."""
    found = re.search(r'<li class="more"><a href="([^"]+)" hx-get="([^"]+)"', fragment)
    if found is None:
        return None, None
    return html.unescape(found.group(2)), html.unescape(found.group(1))


def day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Seeded:
    """The ids of :func:`seed`'s leads, by first name."""

    alice: int
    bob: int
    cara: int
    dan: int
    eve: int


async def seed(sessions: Sessions, team: Team) -> Seeded:
    async with sessions() as session:
        admin_id = next(u.id for u in await users.list_users(session) if u.role == "admin")
    alice = await add_lead(
        sessions,
        "Alice Archer",
        created=day("2026-11-01T10:00"),
        email="alice@acme.example",
        phone="+1 415 555 0101",
        company="Acme",
        source="form",
        owner=team.ana_rep_id,
        tier="hot",
    )
    bob = await add_lead(
        sessions,
        "Bob Baker",
        created=day("2026-11-10T10:00"),
        stage="contacted",
        email="bob@globex.example",
        company="Globex",
        source="fb-spring",
        attribution={"campaign": "fb-spring"},
        owner=team.bo_rep_id,
        tier="warm",
    )
    cara = await add_lead(
        sessions,
        "Cara Cole",
        created=day("2026-11-20T23:30"),
        stage="contacted",
        email="cara@initech.example",
        company="Initech",
        source="csv",
        attribution={"utm_campaign": "newsletter"},
        tier="cold",
    )
    dan = await add_lead(
        sessions,
        "Dan Drew",
        created=day("2026-12-01T08:00"),
        stage="won",
        email="dan@acme.example",
        company="Acme",
        source="form",
        owner=team.ana_rep_id,
        waiting_since=day("2026-12-02T09:00"),
    )
    eve = await add_lead(
        sessions,
        "Eve Evans",
        created=day("2026-12-05T08:00"),
        stage="lost",
        email="eve@umbrella.example",
        phone="+44 20 7946 0958",
        company="Umbrella",
        source="api",
        owner=team.bo_rep_id,
        tier="hot",
        waiting_since=day("2026-12-05T09:00"),
        taken_by=admin_id,
    )
    return Seeded(alice, bob, cara, dan, eve)


async def test_the_board_shows_every_stage_with_its_count_and_cards(
    admin: ConsoleClient, sessions: Sessions, team: Team
) -> None:
    leads = await seed(sessions, team)
    page = await board(admin)
    assert list(page.counts) == [s.value for s in Stage]
    assert page.counts == {
        "new": 1, "contacted": 2, "qualified": 0, "proposal_sent": 0, "won": 1, "lost": 1,
        "dormant": 0,
    }  # fmt: skip
    assert page.cards == {
        "new": [leads.alice],
        "contacted": [leads.cara, leads.bob],  # newest first
        "qualified": [],
        "proposal_sent": [],
        "won": [leads.dan],
        "lost": [leads.eve],
        "dormant": [],
    }
    assert "5 leads" in page.page
    bob = page.card(leads.bob)
    assert f'href="/console/leads/{leads.bob}"' in bob
    for shown_text in ("Bob Baker", "Globex", "warm", "fb-spring", ">Bo<"):
        assert shown_text in bob, shown_text
    cara = page.card(leads.cara)
    assert "newsletter" in cara and "Unassigned" in cara and "cold" in cara
    alice = page.card(leads.alice)
    assert "form" in alice and ">Ana<" in alice and "hot" in alice
    assert 'style="' not in page.page and "<script>" not in page.page  # the CSP allows neither


@pytest.mark.parametrize("scan_cap", [board_store.SCAN_CAP, 0], ids=["one pass", "per column"])
async def test_each_filter_and_the_search_narrow_the_board(
    admin: ConsoleClient,
    sessions: Sessions,
    team: Team,
    scan_cap: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Both ways of reading a filtered board: one pass over the matches, or (more matches
    # than the cap) a count and a query a column.
    monkeypatch.setattr(board_store, "SCAN_CAP", scan_cap)
    leads = await seed(sessions, team)
    a, b, c, d, e = leads.alice, leads.bob, leads.cara, leads.dan, leads.eve
    cases: list[tuple[str, set[int]]] = [
        (f"owner={team.ana_rep_id}", {a, d}),
        (f"owner={team.bo_rep_id}", {b, e}),
        ("owner=none", {c}),
        ("tier=hot", {a, e}),
        ("tier=cold", {c}),
        ("source=form", {a, d}),
        ("campaign=fb-spring", {b}),
        ("campaign=newsletter", {c}),  # utm_campaign counts as the campaign
        ("from=2026-11-10&to=2026-11-20", {b, c}),  # both ends inclusive, whole days
        ("from=2026-12-01", {d, e}),
        ("to=2026-11-09", {a}),
        (f"owner={team.ana_rep_id}&tier=hot", {a}),
        ("q=acme", {a, d}),  # company (and email domain)
        ("q=ALICE", {a}),  # any case
        ("q=globex.example", {b}),  # email
        ("q=Cole", {c}),  # name
        ("q=415+555-01", {a}),  # phone digits, whatever the punctuation
        ("q=7946", {e}),
        ("q=%25", set()),  # "%" is a character to find, not a wildcard
        ("q=nobody", set()),
    ]
    for query, expected in cases:
        page = await board(admin, "?" + query)
        assert page.ids() == expected, query
        assert sum(page.counts.values()) == len(expected), query


async def test_the_stage_filter_shows_one_column(
    admin: ConsoleClient, sessions: Sessions, team: Team
) -> None:
    leads = await seed(sessions, team)
    page = await board(admin, "?stage=contacted")
    assert page.cards == {"contacted": [leads.cara, leads.bob]}
    assert page.counts == {"contacted": 2}
    # The stage counts above the columns still show every stage, each a link to it.
    assert "/console/board?stage=won" in page.page


async def test_malformed_filters_are_refused(admin: ConsoleClient) -> None:
    for query in (
        "stage=closed",
        "tier=lukewarm",
        "owner=ana",
        "from=yesterday",
        "to=9999-12-31",
        "before=x",
        "before=0",
        f"before={2**63}",
        "owner=%C2%B2",  # a superscript two: a digit to int(), not an id
    ):
        response = await admin.get(f"/console/board?{query}")
        assert response.status == 400, query
    response = await admin.get("/console/board/column/closed")
    assert response.status == 404


async def test_mine_narrows_to_the_reps_own_leads_and_the_pipeline_is_shared(
    rep: ConsoleClient, admin: ConsoleClient, sessions: Sessions, team: Team
) -> None:
    leads = await seed(sessions, team)
    everything = {leads.alice, leads.bob, leads.cara, leads.dan, leads.eve}
    assert (await board(rep)).ids() == everything  # Ana sees every lead
    mine = await board(rep, "?mine=1")
    assert mine.ids() == {leads.alice, leads.dan}
    assert mine.counts["new"] == 1 and mine.counts["won"] == 1
    assert 'name="mine" value="1" checked' in mine.page
    # "mine" wins over another owner; an admin (no rep) has no "mine" and it narrows nothing.
    assert (await board(rep, f"?mine=1&owner={team.bo_rep_id}")).ids() == mine.ids()
    as_admin = await board(admin, "?mine=1")
    assert as_admin.ids() == everything
    assert 'name="mine"' not in as_admin.page


async def test_waiting_for_a_human_is_a_badge_until_someone_takes_it(
    admin: ConsoleClient, sessions: Sessions, team: Team
) -> None:
    leads = await seed(sessions, team)
    page = await board(admin)
    assert "Waiting for a human" in page.card(leads.dan)
    assert "Waiting for a human" not in page.card(leads.eve)  # asked, but a rep has it
    assert "Waiting for a human" not in page.card(leads.alice)


async def test_more_pages_each_column_by_keyset_without_repeats_or_gaps(
    admin: ConsoleClient, sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(board_page, "PAGE", 2)
    ids = [
        await add_lead(
            sessions,
            f"Lead {n}",
            email=f"lead{n}@leads.example",
            created=day(f"2026-12-0{n}T10:00"),
            tier="hot" if n % 2 else "cold",
        )
        for n in range(1, 6)
    ]
    first = await board(admin)
    assert first.cards["new"] == [ids[4], ids[3]] and first.counts["new"] == 5
    fragment_url, page_url = more_links(first.page)
    assert fragment_url == f"/console/board/column/new?before={ids[3]}"
    assert page_url == f"/console/board?stage=new&before={ids[3]}"
    # A lead arriving meanwhile changes nothing below the cards already shown.
    await add_lead(
        sessions, "Late Lead", email="late@leads.example", created=day("2026-12-06T10:00")
    )
    seen = list(first.cards["new"])
    while fragment_url is not None:
        response = await admin.get(fragment_url, headers={"HX-Request": "true"})
        fragment = await response.text()
        assert response.status == 200, fragment
        assert "<html" not in fragment  # a fragment, not a page
        seen += [int(i) for i in re.findall(r'data-lead="(\d+)"', fragment)]
        fragment_url, _ = more_links(fragment)
    assert seen == sorted(ids, reverse=True)
    # Without JavaScript, the link shows the board's column from there.
    paged = await board(admin, page_url.removeprefix("/console/board"))
    assert paged.cards == {"new": [ids[2], ids[1]]}
    assert "Back to the newest leads" in paged.page
    # The next page keeps the filters.
    hot = await board(admin, "?tier=hot")
    assert hot.cards["new"] == [ids[4], ids[2]]
    fragment_url, page_url = more_links(hot.page)
    assert fragment_url == f"/console/board/column/new?tier=hot&before={ids[2]}"
    assert page_url == f"/console/board?tier=hot&stage=new&before={ids[2]}"
    hot_paged = await board(admin, page_url.removeprefix("/console/board"))
    assert hot_paged.cards == {"new": [ids[0]]}
    response = await admin.get(fragment_url)
    rest = await response.text()
    assert [int(i) for i in re.findall(r'data-lead="(\d+)"', rest)] == [ids[0]]
    assert more_links(rest) == (None, None)


async def test_nul_characters_in_the_filters_are_dropped(
    admin: ConsoleClient, sessions: Sessions, team: Team
) -> None:
    leads = await seed(sessions, team)  # PostgreSQL refuses NUL in text: it must not get one
    assert (await board(admin, "?q=Bob%00&source=fb-spring%00")).ids() == {leads.bob}
    response = await admin.get("/console/board/column/new?q=%00&campaign=%00")
    assert response.status == 200


def test_the_query_string_is_read_strictly() -> None:
    query = board_page.parse_query({"q": "  acme ", "to": "2026-11-20", "mine": "1"}, 7)
    assert query.filters.search == "acme" and query.filters.owner_rep_id == 7
    assert query.filters.created_before == day("2026-11-21T00:00")
    assert query.link_params(before=3) == "q=acme&mine=1&to=2026-11-20&before=3"
