"""The pipeline board's reads: how many leads each stage holds and a page of each stage's
column, newest first, under the same filters (owner, tier, source, campaign, creation date,
a search over name, email, phone and company).

Paging is keyset, never OFFSET: a column's next page is its leads with ``id < before``, so
a page is a short backward range scan of ``ix_leads_stage_id`` (``ix_leads_owner_stage_id``
under an owner filter), as quick on the thousandth page as on the first, and a lead that
arrives meanwhile neither repeats a card nor hides one.

Filters no index serves (search, tier, source, campaign, dates) are read in ONE pass:
:func:`board_view` collects ``(id, stage)`` of every match, newest first, up to
:data:`SCAN_CAP`, and takes the counts and every column's first page from it. Walking each
column's index with the filter instead reads every lead once per column plus once for the
counts, each through an index lookup: at 1M leads a search that finds nobody took seconds
(``bench/bench_board.py``). More matches than the cap means a broad filter, whose column
pages fill fast from the index; only the counts then read everything.

A page reads only what a card shows; the tier and the campaign are picked out of their JSON
in SQL (``->>`` on PostgreSQL, ``json_extract`` on SQLite).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.stage_names import Stage
from scheduler.store.models import Lead, Rep

MAX_SEARCH = 100
"""A search term is cut to this many characters (no searched column holds more that
matters, and the patterns stay bounded)."""
SCAN_CAP = 10_000
"""The most matches of an unindexed filter read in one pass (see the module's docstring)."""
# The escape character of the LIKE patterns (what a user types is matched literally).
_ESCAPE = "\\"
_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])

TIER = Lead.qualification["tier"].as_string()
"""A lead's qualification tier (hot, warm, cold), or NULL while it is not qualified."""
CAMPAIGN = func.coalesce(
    Lead.attribution["campaign"].as_string(), Lead.attribution["utm_campaign"].as_string()
)
"""A lead's campaign: ``attribution.campaign`` (the click-to-chat ref code's slug, a CSV's
campaign column), else the ``utm_campaign`` a form or ad passed on; NULL without either."""


@dataclass(frozen=True, slots=True)
class BoardFilters:
    """What the board shows. Empty fields filter nothing; ``unassigned`` asks for the leads
    without an owner (and is not combined with ``owner_rep_id``). ``created_from`` is
    inclusive, ``created_before`` exclusive."""

    owner_rep_id: int | None = None
    unassigned: bool = False
    tier: str | None = None
    source: str | None = None
    campaign: str | None = None
    created_from: datetime | None = None
    created_before: datetime | None = None
    search: str | None = None

    @property
    def unindexed(self) -> bool:
        """Whether a filter narrows the board that no index of ``leads`` serves."""
        return any(
            value is not None and value != ""
            for value in (
                self.tier,
                self.source,
                self.campaign,
                self.created_from,
                self.created_before,
                self.search,
            )
        )


@dataclass(frozen=True, slots=True)
class BoardCard:
    """One lead as a card on the board."""

    id: int
    stage: str
    name: str | None
    company: str | None
    email: str | None
    phone: str | None
    tier: str | None
    source: str | None
    campaign: str | None
    owner: str | None
    last_activity: datetime
    # When the prospect asked for a person, while nobody has taken the conversation.
    waiting_since: datetime | None


@dataclass(frozen=True, slots=True)
class ColumnPage:
    """A page of one stage's column: its cards, newest first, and the ``before`` of the next
    page (None on the last one)."""

    cards: list[BoardCard]
    next_before: int | None


@dataclass(frozen=True, slots=True)
class BoardView:
    """The board under one set of filters: every stage's count (each stage present, zero
    included) and the first page of each column asked for."""

    counts: dict[str, int]
    columns: dict[str, ColumnPage]


_CARD = (
    select(
        Lead.id,
        Lead.stage,
        Lead.name,
        Lead.company,
        Lead.email,
        Lead.phone,
        TIER.label("tier"),
        Lead.source,
        CAMPAIGN.label("campaign"),
        Rep.name.label("owner"),
        Lead.last_inbound_at,
        Lead.last_outbound_at,
        Lead.updated_at,
        Lead.human_requested_at,
        Lead.taken_by_user_id,
    )
    .select_from(Lead)
    .outerjoin(Rep, Rep.id == Lead.owner_rep_id)
)


async def board_view(
    session: AsyncSession,
    filters: BoardFilters,
    *,
    stages: Sequence[str],
    before: int | None = None,
    limit: int = 20,
) -> BoardView:
    """The counts under ``filters`` and the first page (ids below ``before``, when given)
    of each of ``stages``' columns: from one pass over the matches when a filter no index
    serves narrows the board to at most :data:`SCAN_CAP` leads, else a count and a query a
    column."""
    if filters.unindexed:
        matches = await _matching(session, filters, SCAN_CAP + 1)
        if len(matches) <= SCAN_CAP:
            return await _view_of(session, matches, stages, before, limit)
    counts = await stage_counts(session, filters)
    columns = {
        stage: await column_page(session, stage, filters, before=before, limit=limit)
        for stage in stages
    }
    return BoardView(counts, columns)


async def column_page(
    session: AsyncSession,
    stage: str,
    filters: BoardFilters,
    *,
    before: int | None = None,
    limit: int = 20,
) -> ColumnPage:
    """The leads of ``stage`` under ``filters`` with an id below ``before`` (from the
    newest without it), at most ``limit``, newest first."""
    query = _filtered(_CARD, filters, _dialect(session)).where(Lead.stage == stage)
    if before is not None:
        query = query.where(Lead.id < before)
    # One row more than the page says whether there is a next one.
    rows = (await session.execute(query.order_by(Lead.id.desc()).limit(limit + 1))).all()
    cards = [_card(row) for row in rows[:limit]]
    return ColumnPage(cards, cards[-1].id if len(rows) > limit else None)


async def stage_counts(session: AsyncSession, filters: BoardFilters) -> dict[str, int]:
    """How many leads under ``filters`` each stage holds (every stage, zero included), in
    one pass.

    Without a filter that needs the rows themselves, ``GROUP BY stage`` reads a stage index
    alone. With one, a count per stage with a ``FILTER`` clause: SQLite serves the
    ``GROUP BY`` by walking ``ix_leads_stage_id`` and looking every row up, twice as slow as
    reading the table in order (and the ``FILTER`` form is the slower one without a filter;
    1M leads, ``bench/bench_board.py``)."""
    dialect = _dialect(session)
    if filters.unindexed:
        counted = [func.count().filter(Lead.stage == stage.value) for stage in Stage]
        each = _filtered(select(*counted).select_from(Lead), filters, dialect)
        row = (await session.execute(each)).one()
        return {stage.value: int(count) for stage, count in zip(Stage, row, strict=True)}
    grouped = _filtered(select(Lead.stage, func.count()), filters, dialect)
    rows = await session.execute(grouped.group_by(Lead.stage))
    found = {str(stage): int(count) for stage, count in rows}
    return {stage.value: found.get(stage.value, 0) for stage in Stage}


async def _matching(
    session: AsyncSession, filters: BoardFilters, limit: int
) -> list[tuple[int, str]]:
    """``(id, stage)`` of the leads under ``filters``, newest first, at most ``limit``."""
    query = _filtered(select(Lead.id, Lead.stage), filters, _dialect(session))
    rows = await session.execute(query.order_by(Lead.id.desc()).limit(limit))
    return [(int(lead_id), stage) for lead_id, stage in rows]


async def _view_of(
    session: AsyncSession,
    matches: list[tuple[int, str]],
    stages: Sequence[str],
    before: int | None,
    limit: int,
) -> BoardView:
    """The board made of every match (newest first): counts, and each column's page."""
    found = Counter(stage for _, stage in matches)
    counts = {stage.value: found[stage.value] for stage in Stage}
    pages: dict[str, tuple[list[int], int | None]] = {}
    for stage in stages:
        ids = [i for i, s in matches if s == stage and (before is None or i < before)]
        more = ids[limit - 1] if len(ids) > limit else None
        pages[stage] = (ids[:limit], more)
    cards = await _cards(session, (i for ids, _ in pages.values() for i in ids))
    columns = {
        stage: ColumnPage([cards[i] for i in ids], more) for stage, (ids, more) in pages.items()
    }
    return BoardView(counts, columns)


async def _cards(session: AsyncSession, lead_ids: Iterable[int]) -> dict[int, BoardCard]:
    ids = list(lead_ids)
    if not ids:
        return {}
    rows = await session.execute(_CARD.where(Lead.id.in_(ids)))
    return {row.id: _card(row) for row in rows}


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _filtered(query: _Query, filters: BoardFilters, dialect: str) -> _Query:
    conditions: list[ColumnElement[bool]] = []
    if filters.unassigned:
        conditions.append(Lead.owner_rep_id.is_(None))
    elif filters.owner_rep_id is not None:
        conditions.append(Lead.owner_rep_id == filters.owner_rep_id)
    if filters.tier:
        conditions.append(TIER == filters.tier)  # noqa: SIM300 (a column, not a constant)
    if filters.source:
        conditions.append(Lead.source == filters.source)
    if filters.campaign:
        conditions.append(CAMPAIGN == filters.campaign)  # noqa: SIM300
    if filters.created_from is not None:
        conditions.append(Lead.created_at >= filters.created_from)
    if filters.created_before is not None:
        conditions.append(Lead.created_at < filters.created_before)
    if filters.search and filters.search.strip():
        conditions.append(_matches(filters.search, dialect))
    return query.where(and_(*conditions)) if conditions else query


def _matches(search: str, dialect: str) -> ColumnElement[bool]:
    """Name, email or company containing ``search`` (any case), or a phone containing its
    digits ("+1 (555) 010-0100" finds "+15550100100").

    SQLite's LIKE already ignores the case of ASCII letters (and its ``lower()`` knows no
    others), so it gets a plain LIKE: ``lower(x) LIKE lower(y)``, what ``ilike`` renders
    there, cost more than half of a search's time. PostgreSQL gets ILIKE."""
    term = search.strip()[:MAX_SEARCH]
    pattern = f"%{_escape_like(term)}%"
    found = [
        column.like(pattern, escape=_ESCAPE)
        if dialect == "sqlite"
        else column.ilike(pattern, escape=_ESCAPE)
        for column in (Lead.name, Lead.email, Lead.company)
    ]
    digits = "".join(c for c in term if c.isdigit())
    # A term with a few digits may be (part of) a phone number; fewer would match nearly all.
    if len(digits) >= 3:
        found.append(Lead.phone.like(f"%{digits}%"))
    return or_(*found)


def _escape_like(term: str) -> str:
    for special in (_ESCAPE, "%", "_"):
        term = term.replace(special, _ESCAPE + special)
    return term


def _card(row: Any) -> BoardCard:
    activity = [t for t in (row.last_inbound_at, row.last_outbound_at) if t is not None]
    waiting = row.human_requested_at if row.taken_by_user_id is None else None
    return BoardCard(
        id=row.id,
        stage=row.stage,
        name=row.name,
        company=row.company,
        email=row.email,
        phone=row.phone,
        tier=row.tier,
        source=row.source,
        campaign=row.campaign,
        owner=row.owner,
        last_activity=max([row.updated_at, *activity]),
        waiting_since=waiting,
    )
