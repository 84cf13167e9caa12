"""The pipeline board (issue 14, item 2): a column per stage with its count and its newest
cards, under filters (mine, owner, stage, tier, source, campaign, creation dates) and a
search over name, email, phone and company.

Every rep sees every lead (the pipeline is shared); "mine" narrows to the signed-in rep's.
A column pages on by keyset: its "more" link asks for the cards below the last one shown
(``before=<id>``), as a fragment htmx puts in place of the link, or, without JavaScript, as
the board showing that column from there. The filters travel in the query string, so a
filtered board is a link one can share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from bot.console.render import STAGE_LABELS, current, render
from bot.http.appkeys import SESSIONS
from bot.http.inputs import clean_text, parse_id
from scheduler.store import board
from scheduler.store.reps import list_reps

routes = web.RouteTableDef()

PAGE = 20
"""Cards per column and page."""
TIERS = ("hot", "warm", "cold")
UNASSIGNED = "none"
"""The ``owner`` value of the leads nobody owns."""
# The filters' own query parameters, in the order links carry them.
FILTER_PARAMS = ("q", "mine", "owner", "stage", "tier", "source", "campaign", "from", "to")


@dataclass(frozen=True)
class BoardQuery:
    """A board request's query string, checked: what to show and the raw values to echo."""

    filters: board.BoardFilters
    stages: tuple[str, ...]
    before: int | None
    values: dict[str, str] = field(default_factory=dict)

    def link_params(self, **extra: str | int) -> str:
        """The query string of the same filters (no paging) plus ``extra``."""
        return urlencode({**self.values, **{k: str(v) for k, v in extra.items()}})


def parse_query(query: Mapping[str, str], rep_id: int | None) -> BoardQuery:
    """Read the board's query parameters (``HTTPBadRequest`` for a malformed one).

    ``mine`` narrows to ``rep_id``'s leads and takes precedence over ``owner``; a user who is
    no rep (an admin) has no leads of their own, so for them it narrows nothing."""
    # PostgreSQL refuses NUL in text (a 500): dropped, as every console input is.
    given = {name: clean_text(query.get(name, "")).strip() for name in FILTER_PARAMS}
    values = {name: value for name, value in given.items() if value}
    owner = values.get("owner")
    owner_id = None if owner is None or owner == UNASSIGNED else _int(owner, "owner")
    unassigned = owner == UNASSIGNED
    if values.get("mine") and rep_id is not None:
        owner_id, unassigned = rep_id, False
    stage = values.get("stage")
    if stage is not None and stage not in STAGE_LABELS:
        raise web.HTTPBadRequest(reason=f"unknown stage {stage!r}")
    tier = values.get("tier")
    if tier is not None and tier not in TIERS:
        raise web.HTTPBadRequest(reason=f"unknown tier {tier!r}")
    created_from = _day(values.get("from"), "from")
    after_last = _day(values.get("to"), "to", next_day=True)
    filters = board.BoardFilters(
        owner_rep_id=owner_id,
        unassigned=unassigned,
        tier=tier,
        source=values.get("source"),
        campaign=values.get("campaign"),
        created_from=created_from,
        created_before=after_last,
        search=values.get("q", "")[: board.MAX_SEARCH] or None,
    )
    before = query.get("before")
    return BoardQuery(
        filters=filters,
        stages=(stage,) if stage else tuple(STAGE_LABELS),
        before=None if not before else _int(before, "before"),
        values=values,
    )


def _int(value: str, name: str) -> int:
    number = parse_id(value)
    if number is None:
        raise web.HTTPBadRequest(reason=f"{name} must be an id (ASCII digits, 64-bit)")
    return number


def _day(value: str | None, name: str, *, next_day: bool = False) -> datetime | None:
    """The start (UTC) of a ``YYYY-MM-DD`` day, or of the day after it."""
    if value is None:
        return None
    try:
        day = date.fromisoformat(value) + timedelta(days=1 if next_day else 0)
    except (ValueError, OverflowError):
        raise web.HTTPBadRequest(reason=f"{name} must be a date (YYYY-MM-DD)") from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass(frozen=True)
class BoardColumn:
    """One stage's column as the template shows it."""

    stage: str
    label: str
    count: int
    cards: list[board.BoardCard]
    more_page: str | None  # the board showing this column on from its last card
    more_fragment: str | None  # the same cards as a fragment, for htmx


def _column(query: BoardQuery, stage: str, count: int, page: board.ColumnPage) -> BoardColumn:
    more_page = more_fragment = None
    if page.next_before is not None:
        more_page = f"/console/board?{query.link_params(stage=stage, before=page.next_before)}"
        more_fragment = (
            f"/console/board/column/{stage}?{query.link_params(before=page.next_before)}"
        )
    return BoardColumn(stage, STAGE_LABELS[stage], count, page.cards, more_page, more_fragment)


@routes.get("/console/board")
async def board_page(request: web.Request) -> web.Response:
    """The board: every stage's count, and the columns asked for with their first cards."""
    user = current(request).user
    query = parse_query(request.query, user.rep_id)
    async with request.app[SESSIONS]() as session:
        view = await board.board_view(
            session, query.filters, stages=query.stages, before=query.before, limit=PAGE
        )
        reps = await list_reps(session)
    counts = view.counts
    columns = [_column(query, stage, counts[stage], page) for stage, page in view.columns.items()]
    context: dict[str, Any] = {
        "columns": columns,
        "counts": [(stage, label, counts[stage]) for stage, label in STAGE_LABELS.items()],
        "total": sum(counts.values()),
        "query": query,
        "values": query.values,
        "reps": reps,
        "tiers": TIERS,
        "can_mine": user.rep_id is not None,
        "paged": query.before is not None,
    }
    return render(request, "board.html", context)


@routes.get("/console/board/column/{stage}")
async def column_fragment(request: web.Request) -> web.Response:
    """The next cards of one column (and its next "more" link): what htmx appends."""
    stage = request.match_info["stage"]
    if stage not in STAGE_LABELS:
        raise web.HTTPNotFound(reason=f"unknown stage {stage!r}")
    query = parse_query(request.query, current(request).user.rep_id)
    async with request.app[SESSIONS]() as session:
        page = await board.column_page(
            session, stage, query.filters, before=query.before, limit=PAGE
        )
    column = _column(query, stage, 0, page)
    return render(request, "board_cards.html", {"column": column})
