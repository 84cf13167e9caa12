"""The home page: the numbers a sales lead looks at each morning (issue 14, item 6).

New leads, time to first touch (p50/p99), conversations waiting for a human, drafts waiting
for approval, follow-ups due today, bookings; and two charts, stage conversion and bookings
per campaign over the last 30 days. "Today" is the UTC day. The charts are SVG drawn here on
the server (no chart library, nothing from a CDN): horizontal bars, each with its label and
its value as text, so they read without colour and without JavaScript.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web

from bot.console.render import STAGE_LABELS, render
from bot.http.appkeys import SESSIONS
from scheduler.stage_names import Stage
from scheduler.store import dashboard
from scheduler.store.models import utcnow

routes = web.RouteTableDef()

DAY = timedelta(days=1)
WEEK = 7 * DAY
CHART_DAYS = 30
FIRST_TOUCH_LEADS = 100_000
"""Time to first touch is taken over at most this many of the newest leads of the week (the
page says so when there were more)."""
CHART_CAMPAIGNS = 10
# The funnel's order; lost and dormant are exits, shown after it.
FUNNEL = (Stage.NEW, Stage.CONTACTED, Stage.QUALIFIED, Stage.PROPOSAL_SENT, Stage.WON)
EXITS = (Stage.LOST, Stage.DORMANT)
NO_CAMPAIGN = "no campaign"


# -- the charts' geometry (viewBox units) ---------------------------------------------------
# The chart is drawn at this width on a wide screen and scaled down to a phone's, whose
# stylesheet sets larger text to make up for it (today.css).
CHART_WIDTH = 460
LABEL_WIDTH = 130  # the labels, right-aligned left of the bars
VALUE_ROOM = 100  # the value's text, right of the longest bar
ROW = 30
BAR = 20
MAX_LABEL = 15  # longer labels are cut (the bar's tooltip has them whole)


@dataclass(frozen=True)
class ChartBar:
    """One bar: its label and value (as text too), where it sits and how long it is."""

    label: str
    full_label: str
    value: int
    text: str
    y: int
    width: int


@dataclass(frozen=True)
class BarChart:
    """A horizontal bar chart, ready for the template's SVG."""

    id: str
    title: str
    bars: list[ChartBar]
    width: int = CHART_WIDTH
    label_width: int = LABEL_WIDTH
    bar_height: int = BAR

    @property
    def height(self) -> int:
        """The chart's height: one row a bar (one empty row when there is none)."""
        return ROW * max(1, len(self.bars))


def bar_chart(chart_id: str, title: str, rows: Sequence[tuple[str, int, str]]) -> BarChart:
    """A chart of ``(label, value, value as text)`` rows, bars scaled to the largest value
    (a non-zero value always shows at least a sliver)."""
    longest = CHART_WIDTH - LABEL_WIDTH - VALUE_ROOM
    top = max((value for _, value, _ in rows), default=0)
    bars = []
    for index, (label, value, text) in enumerate(rows):
        width = 0 if top == 0 else round(longest * value / top)
        if value and width < 2:
            width = 2
        short = label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"
        bars.append(ChartBar(short, label, value, text, ROW * index + (ROW - BAR) // 2, width))
    return BarChart(chart_id, title, bars)


def stage_chart(reached: dict[str, int]) -> BarChart:
    """Stage conversion: how many of the window's new leads reached each stage, with the
    share of them for the funnel's later stages."""
    created = reached.get(Stage.NEW.value, 0)
    rows = []
    for stage in (*FUNNEL, *EXITS):
        count = reached.get(stage.value, 0)
        text = f"{count:,}"
        if stage is not Stage.NEW and created:
            text += f" ({count / created:.0%})"
        rows.append((STAGE_LABELS[stage], count, text))
    return bar_chart("stages", f"Stage conversion, last {CHART_DAYS} days", rows)


def campaign_chart(bookings: Sequence[tuple[str | None, int]]) -> BarChart:
    """Bookings per campaign, most first."""
    rows = [(name or NO_CAMPAIGN, count, f"{count:,}") for name, count in bookings]
    return bar_chart("campaigns", f"Bookings per campaign, last {CHART_DAYS} days", rows)


def percentile(ordered: Sequence[timedelta], share: float) -> timedelta | None:
    """The nearest-rank percentile of sorted ``ordered`` (``share`` in (0, 1]); None when
    empty: the smallest value with at least ``share`` of them at or below it."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass(frozen=True)
class FirstTouchFigures:
    """Time to first touch over the week's new leads."""

    p50: timedelta | None
    p99: timedelta | None
    touched: int
    untouched: int
    capped: bool


def day_start(now: datetime) -> datetime:
    """Midnight (UTC) that began ``now``'s day."""
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


@routes.get("/console/")
async def today_page(request: web.Request) -> web.Response:
    """Today: the morning's figures and the two charts."""
    now = utcnow()
    today = day_start(now)
    async with request.app[SESSIONS]() as session:
        counts = await dashboard.today_counts(
            session, day_start=today, week_start=now - WEEK, day_end=today + DAY
        )
        touches = await dashboard.first_touches(session, since=now - WEEK, limit=FIRST_TOUCH_LEADS)
        reached = await dashboard.stages_reached(session, since=now - CHART_DAYS * DAY)
        bookings = await dashboard.bookings_by_campaign(
            session, since=now - CHART_DAYS * DAY, limit=CHART_CAMPAIGNS
        )
    first_touch = FirstTouchFigures(
        p50=percentile(touches.delays, 0.5),
        p99=percentile(touches.delays, 0.99),
        touched=len(touches.delays),
        untouched=touches.untouched,
        capped=touches.capped,
    )
    context = {
        "counts": counts,
        "first_touch": first_touch,
        "first_touch_cap": FIRST_TOUCH_LEADS,
        "created_in_window": reached.get(Stage.NEW.value, 0),
        "chart_days": CHART_DAYS,
        "charts": [stage_chart(reached), campaign_chart(bookings)],
    }
    return render(request, "today.html", context)
