"""The pipeline board's reads: one page of a stage's column, newest first, and how many leads
each stage holds, both under the same filters (owner, tier, source, campaign, creation date,
a search over name, email, phone and company).

Paging is keyset, never OFFSET: a column's next page is the leads with ``id < before``, so
every page is a short backward range scan of ``ix_leads_stage_id`` (``ix_leads_owner_stage_id``
under an owner filter), as quick on the thousandth page as on the first, and a lead that
arrives meanwhile neither repeats a card nor hides one. A page reads only the columns a card
shows; the tier and the campaign are picked out of their JSON in SQL (``->>`` on PostgreSQL,
``json_extract`` on SQLite), so the rest of a qualification never leaves the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.store.models import Lead, Rep

# A search term longer than this is cut: no name, email or company column is longer, and
# the LIKE patterns stay bounded.
MAX_SEARCH = 100
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
    query = _filtered(_CARD, filters).where(Lead.stage == stage)
    if before is not None:
        query = query.where(Lead.id < before)
    # One row more than the page says whether there is a next one.
    rows = (await session.execute(query.order_by(Lead.id.desc()).limit(limit + 1))).all()
    cards = [_card(row) for row in rows[:limit]]
    return ColumnPage(cards, cards[-1].id if len(rows) > limit else None)


async def stage_counts(session: AsyncSession, filters: BoardFilters) -> dict[str, int]:
    """How many leads under ``filters`` each stage holds (stages without any are left out):
    one ``GROUP BY`` over the same filters as the pages."""
    query = _filtered(select(Lead.stage, func.count()).select_from(Lead), filters)
    rows = await session.execute(query.group_by(Lead.stage))
    return {stage: int(count) for stage, count in rows}


def _filtered(query: _Query, filters: BoardFilters) -> _Query:
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
    if filters.search:
        conditions.append(_matches(filters.search))
    return query.where(and_(*conditions)) if conditions else query


def _matches(search: str) -> ColumnElement[bool]:
    """Name, email or company containing ``search`` (any case), or a phone containing its
    digits ("+1 (555) 010-0100" finds "+15550100100")."""
    term = search.strip()[:MAX_SEARCH]
    pattern = f"%{_escape_like(term)}%"
    found = [
        Lead.name.ilike(pattern, escape=_ESCAPE),
        Lead.email.ilike(pattern, escape=_ESCAPE),
        Lead.company.ilike(pattern, escape=_ESCAPE),
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
