"""Follow-up timing in the service: the cadence, the sweeper's periodic jobs, the approval API.

``setup(app)`` registers a cleanup context that loads ``LEADBOT_CADENCE_FILE`` (a bad file
fails start-up with file:line reasons), builds the drafter (LLM when configured, else
templates) and the :class:`~scheduler.followups.sweeper.Sweeper`, and appends its jobs to
``app[JOBS]``: sweep, reaper, dormant, reactivation, the reps' daily digest
(:mod:`bot.http.digest`), and the next-step check (every live
lead has a next step; :mod:`scheduler.followups.next_steps`), whose findings the gauge
``leadbot_leads_without_next_step{stage,outcome}`` exports. Routes:

- ``GET /api/touches?status=awaiting_approval&lead_id=&after=&limit=``
- ``POST /api/touches/{id}/approve`` (body optional: ``{"text": "edited", "by": "dana"}``)
- ``POST /api/touches/{id}/reject`` (body: ``{"reason": "...", "by": "dana"}``)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.booking_link import booking_link
from bot.http.appkeys import DISPATCHER, JOBS, METRICS, SESSIONS, SETTINGS
from bot.http.digest import send_due_digests
from bot.http.errors import ApiError, read_json_object
from bot.http.inputs import RequestInputError, parse_id, parse_int
from bot.settings import Settings
from scheduler.followups.cadence import Cadence, load_cadence, with_sender
from scheduler.followups.drafting import Drafter, LLMDrafter, TemplateDrafter
from scheduler.followups.lifecycle import mark_dormant, start_reactivations
from scheduler.followups.next_steps import OUTCOMES, SCOPE, check_next_steps
from scheduler.followups.sweeper import SweepConfig, Sweeper
from scheduler.followups.touches import TouchStatus
from scheduler.loop import PeriodicJob
from scheduler.store.models import Touch, utcnow
from scheduler.store.touches import deliveries, list_touches

CADENCE = web.AppKey("cadence", Cadence)
SWEEPER = web.AppKey("sweeper", Sweeper)
routes = web.RouteTableDef()
MAX_PAGE = 500


def load_cadence_for(settings: Settings) -> Cadence:
    """``LEADBOT_CADENCE_FILE``, its sender filled from the company, sender name and email
    signature settings where the file names none
    (:class:`~scheduler.followups.cadence.CadenceError` for a bad file)."""
    cadence = load_cadence(settings.cadence_file, default_timezone=settings.default_timezone)
    return with_sender(
        cadence,
        company=settings.company_name,
        name=settings.sender_name,
        signature=settings.email_signature,
    )


def build_drafter(settings: Settings, cadence: Cadence) -> Drafter:
    """The LLM drafter when a model and key are configured, else the template drafter."""
    if settings.llm_enabled:
        return LLMDrafter(
            cadence,
            model=settings.llm_model,
            api_key=settings.llm_key,
            base_url=settings.openai_base_url or None,
            prompts_dir=settings.prompts_dir,
        )
    return TemplateDrafter(cadence)


def build_sweeper(settings: Settings, app: web.Application, cadence: Cadence) -> Sweeper:
    """The sweeper wired to the app's sessions and dispatcher."""
    return Sweeper(
        app[SESSIONS],
        cadence,
        build_drafter(settings, cadence),
        app[DISPATCHER],
        links={
            "calendly": settings.calendly_url,
            "public": settings.public_url,
            "resource": cadence.resources.get("resource") or settings.resource_url,
        },
        booking_link=booking_link,
        config=SweepConfig(
            batch=settings.sweep_batch,
            max_batches=settings.sweep_max_batches,
            lease=timedelta(seconds=settings.touch_lease_seconds),
            max_attempts=settings.touch_max_attempts,
        ),
    )


def next_step_gauge(registry: CollectorRegistry) -> Gauge:
    """``leadbot_leads_without_next_step{stage,outcome}``: what the last check found."""
    return Gauge(
        "leadbot_leads_without_next_step",
        "Live leads (new, contacted) the last check found without a next step, by stage "
        "and what was done (scheduled, dormant, unrepaired).",
        ["stage", "outcome"],
        registry=registry,
    )


def jobs(settings: Settings, sweeper: Sweeper, gauge: Gauge | None = None) -> list[PeriodicJob]:
    """The periodic jobs of follow-up timing."""
    sessions, cadence = sweeper.sessions, sweeper.cadence

    async def dormant(now: datetime) -> None:
        await mark_dormant(sessions, cadence, now=now)

    async def reactivate(now: datetime) -> None:
        await start_reactivations(
            sessions, cadence, now=now, per_rep_day=settings.reactivation_per_rep_day
        )

    async def digest(now: datetime) -> None:
        ids = await send_due_digests(sessions, settings, cadence, now=now)
        if ids and sweeper.dispatcher is not None:  # else the outbox job delivers them
            await sweeper.dispatcher.deliver_many(ids, now)

    async def next_steps(now: datetime) -> None:
        report = await check_next_steps(sessions, cadence, now=now)
        if gauge is not None:
            for stage in SCOPE:  # closed label sets; zero what was not found this time
                for outcome in OUTCOMES:
                    gauge.labels(stage, outcome).set(report.counts[(stage, outcome)])

    return [
        PeriodicJob("touches.sweep", settings.sweep_seconds, sweeper.sweep),
        PeriodicJob("touches.reap", max(settings.touch_lease_seconds / 5, 5), sweeper.reap),
        PeriodicJob("touches.dormant", settings.dormant_check_seconds, dormant),
        PeriodicJob("touches.reactivation", settings.reactivation_check_seconds, reactivate),
        PeriodicJob("reactivation.digest", settings.digest_check_seconds, digest),
        PeriodicJob("leads.next_steps", settings.next_step_check_seconds, next_steps),
    ]


def setup(app: web.Application) -> None:
    """Register the cleanup context and the routes (call at the components marker)."""

    async def followups(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        cadence = load_cadence_for(settings)
        sweeper = build_sweeper(settings, app, cadence)
        app[CADENCE] = cadence
        app[SWEEPER] = sweeper
        app[JOBS].extend(jobs(settings, sweeper, next_step_gauge(app[METRICS].registry)))
        yield

    app.cleanup_ctx.append(followups)
    app.router.add_routes(routes)


def touch_json(touch: Touch, delivery: dict[str, Any] | None = None) -> dict[str, Any]:
    """The public JSON form of a touch; ``delivery`` is its outbox row's fate (see
    :func:`scheduler.followups.touches.deliveries`): ``status`` says queued until the message
    went out."""
    return {
        "id": touch.id,
        "lead_id": touch.lead_id,
        "sequence": touch.sequence,
        "step": touch.step,
        "cycle": touch.cycle,
        "channel": touch.channel,
        "due_at": touch.due_at.isoformat(),
        "status": touch.status,
        "draft": touch.draft,
        "subject": (touch.meta or {}).get("subject"),
        "meta": touch.meta,
        "note": touch.note,
        "approved_by": touch.approved_by,
        "approved_at": touch.approved_at.isoformat() if touch.approved_at else None,
        "sent_at": touch.sent_at.isoformat() if touch.sent_at else None,
        "outbox_id": touch.outbox_id,
        "delivery": delivery,
    }


class ApproveIn(BaseModel):
    """Body of ``POST /api/touches/{id}/approve`` (all optional)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    text: str | None = Field(default=None, min_length=1, max_length=4000)
    by: str = Field(default="api", min_length=1, max_length=100)


class RejectIn(BaseModel):
    """Body of ``POST /api/touches/{id}/reject``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=1, max_length=2000)
    by: str = Field(default="api", min_length=1, max_length=100)


def _touch_id(request: web.Request) -> int:
    touch_id = parse_id(request.match_info["touch_id"])  # ASCII digits within 64 bits
    if touch_id is None:
        raise ApiError(404, "not_found", "no such touch")
    return touch_id


async def _body(request: web.Request, model: type[BaseModel]) -> Any:
    raw = await request.read()
    body = await read_json_object(request) if raw.strip() else {}
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        summary = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise ApiError(422, "invalid", summary) from None


@routes.get("/api/touches")
async def list_touches_view(request: web.Request) -> web.Response:
    """Touches in id order; ``status=awaiting_approval`` is the rep's approval queue."""
    query = request.query
    status = query.get("status") or None
    if status is not None and status not in {s.value for s in TouchStatus}:
        known = ", ".join(s.value for s in TouchStatus)
        raise ApiError(400, "bad_query", f"status must be one of {known}")
    try:
        lead_id = parse_int(query["lead_id"]) if query.get("lead_id") else None
        after = parse_int(query.get("after", "0"))
        limit = parse_int(query.get("limit", "50"))
    except RequestInputError:
        raise ApiError(400, "bad_query", "lead_id, after and limit must be integers") from None
    if not 1 <= limit <= MAX_PAGE:
        raise ApiError(400, "bad_query", f"limit must be between 1 and {MAX_PAGE}")
    async with request.app[SESSIONS]() as session:
        touches = await list_touches(
            session, status=status, lead_id=lead_id, after_id=after, limit=limit
        )
        delivered = await deliveries(session, touches)
    next_after = touches[-1].id if len(touches) == limit else None
    return web.json_response(
        {
            "touches": [touch_json(t, delivered.get(t.id)) for t in touches],
            "next_after": next_after,
        }
    )


@routes.post("/api/touches/{touch_id}/approve")
async def approve_touch(request: web.Request) -> web.Response:
    """Approve (optionally edit) a draft: it is re-checked against the lead, then sent."""
    touch_id = _touch_id(request)
    body: ApproveIn = await _body(request, ApproveIn)
    touch = await request.app[SWEEPER].approve(touch_id, by=body.by, text=body.text, now=utcnow())
    return web.json_response({"touch": touch_json(touch)})


@routes.post("/api/touches/{touch_id}/reject")
async def reject_touch(request: web.Request) -> web.Response:
    """Discard a draft; the rest of the cadence continues."""
    touch_id = _touch_id(request)
    body: RejectIn = await _body(request, RejectIn)
    touch = await request.app[SWEEPER].reject(
        touch_id, by=body.by, reason=body.reason, now=utcnow()
    )
    return web.json_response({"touch": touch_json(touch)})
