"""The JSON API over leads: intake, listing, detail with history, stage transitions."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.http.appkeys import METRICS, ON_LEAD_CREATED, SESSIONS, SETTINGS
from bot.http.errors import ApiError, read_json_object
from bot.http.followups import touch_json
from bot.http.inputs import RequestInputError, parse_id, parse_int
from bot.http.metrics import source_label
from bot.http.privacy import hash_key
from scheduler.pipeline.leads import (
    FormSubmission,
    LeadIn,
    form_submissions,
    get_lead,
    intake,
    list_leads,
    stage_history,
)
from scheduler.pipeline.sandbox_leads import release_phone
from scheduler.pipeline.stages import transition
from scheduler.store.erasure import erase_lead
from scheduler.store.leads import reload_lead
from scheduler.store.models import Lead, LeadNote, Stage, StageEvent, utcnow
from scheduler.store.notes import NoteKind, list_notes
from scheduler.store.touches import deliveries, list_touches

TIMELINE_TOUCHES = 500  # a lead's touches shown with it (a cadence has a few per cycle)
EMAIL_NOTES = 50  # the newest notes read from the lead's email replies shown with it
EMAIL_NOTE_FIELDS = (
    "next_step",
    "budget",
    "timeline",
    "sentiment",
    "prompt_version",
    "message_id",
    "email_message_id",
    "subject",
)

routes = web.RouteTableDef()
MAX_PAGE = 500
ERASE_ACTOR = "api"  # the audit row's actor of DELETE /api/leads/{id} unless ?actor= says


class TransitionIn(BaseModel):
    """Body of ``POST /api/leads/{id}/transitions``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    to: Stage
    reason: str | None = Field(default=None, max_length=2000)
    expected_from: Stage | None = None
    actor: str = Field(default="api", min_length=1, max_length=100)


def lead_json(lead: Lead) -> dict[str, Any]:
    """The public JSON form of a lead."""
    return {
        "id": lead.id,
        "name": lead.name,
        "email": lead.email,
        "phone": lead.phone,
        "company": lead.company,
        "role": lead.role,
        "source": lead.source,
        "attribution": lead.attribution,
        "timezone": lead.timezone,
        "stage": lead.stage,
        "lost_reason": lead.lost_reason,
        "version": lead.version,
        "qualification": lead.qualification,
        "opted_out": lead.opted_out_at is not None,
        "email_status": lead.email_status,
        "bot_paused": lead.bot_paused,
        "booked_at": lead.booked_at.isoformat() if lead.booked_at else None,
        "erased_at": lead.erased_at.isoformat() if lead.erased_at else None,
        "created_at": lead.created_at.isoformat(),
        "updated_at": lead.updated_at.isoformat(),
    }


def event_json(event: StageEvent) -> dict[str, Any]:
    """The public JSON form of an audit row."""
    return {
        "from": event.from_stage,
        "to": event.to_stage,
        "reason": event.reason,
        "actor": event.actor,
        "at": event.at.isoformat(),
    }


def email_note_json(note: LeadNote) -> dict[str, Any]:
    """The public JSON form of a note read from an email reply (``EmailNote`` in the
    OpenAPI document)."""
    data = note.data if isinstance(note.data, dict) else {}
    return {
        "id": note.id,
        "at": note.created_at.isoformat(),
        "summary": note.body,
        **{key: data.get(key) for key in EMAIL_NOTE_FIELDS},
        "objections": data.get("objections") or [],
        "source": data.get("source") or "rules",
    }


def form_json(form: FormSubmission) -> dict[str, Any]:
    """The public JSON form of what a lead wrote in a form."""
    return {
        "message": form.message or None,
        "answers": form.answers,
        "source": form.source,
        "at": form.at.isoformat(),
    }


def _validation_error(exc: ValidationError) -> ApiError:
    problems = [
        {"field": ".".join(map(str, e["loc"])) or "body", "message": e["msg"]}
        for e in exc.errors()
    ]
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return ApiError(422, "invalid", summary, problems=problems)


def _lead_id(request: web.Request) -> int:
    # ASCII digits within 64 bits only: int() would also take "1_0", "+1" and "١".
    lead_id = parse_id(request.match_info["lead_id"])
    if lead_id is None:
        raise ApiError(404, "not_found", "no such lead")
    return lead_id


@routes.post("/api/leads")
async def create_lead(request: web.Request) -> web.Response:
    """Intake: 201 with the new lead, or 200 with the existing lead of that email/phone."""
    return await accept_lead(request, await read_json_object(request))


async def accept_lead(request: web.Request, body: dict[str, Any]) -> web.Response:
    """Validate ``body`` as a :class:`LeadIn` (422 when it is not one) and take it in: the
    response of ``POST /api/leads``, which the form webhooks (``bot.http.forms``) share."""
    try:
        data = LeadIn.model_validate(body)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    settings = request.app[SETTINGS]
    async with request.app[SESSIONS].begin() as session:
        # A real lead never lands on a sandbox prospect that holds its number (item 23).
        await release_phone(session, data.phone, default_region=settings.default_region)
        result = await intake(session, data, default_region=settings.default_region, now=utcnow())
    if result.created:
        request.app[METRICS].leads_created.labels(source_label(result.lead.source)).inc()
        for listener in request.app[ON_LEAD_CREATED]:
            listener(result.lead.id)
    # Contact points that stay with another lead (recorded for a human), never dropped.
    conflict = [
        {
            "kind": c.point.kind.value,
            "value": c.point.value,
            "lead_id": c.other_lead_id,
            "reason": c.reason,
        }
        for c in result.conflicts
    ]
    response = web.json_response(
        {"lead": lead_json(result.lead), "created": result.created, "conflict": conflict or None},
        status=201 if result.created else 200,
    )
    response.headers["Location"] = f"/api/leads/{result.lead.id}"
    return response


@routes.get("/api/leads")
async def list_leads_view(request: web.Request) -> web.Response:
    """Leads in id order, optionally of one stage; page with ``after`` and ``limit``."""
    query = request.query
    try:
        stage = Stage(query["stage"]) if query.get("stage") else None
        after = parse_int(query.get("after", "0"))
        limit = parse_int(query.get("limit", "50"))
    except (ValueError, RequestInputError):
        stages = ", ".join(s.value for s in Stage)
        raise ApiError(
            400, "bad_query", f"stage must be one of {stages}; after and limit integers"
        ) from None
    if not 1 <= limit <= MAX_PAGE:
        raise ApiError(400, "bad_query", f"limit must be between 1 and {MAX_PAGE}")
    async with request.app[SESSIONS]() as session:
        leads = await list_leads(session, stage=stage, after_id=after, limit=limit)
    next_after = leads[-1].id if len(leads) == limit else None
    return web.json_response({"leads": [lead_json(x) for x in leads], "next_after": next_after})


@routes.get("/api/leads/{lead_id}")
async def lead_detail(request: web.Request) -> web.Response:
    """One lead with its stage history, its touches (each with how its message fared), its
    form submissions and the newest notes read from its email replies."""
    lead_id = _lead_id(request)
    async with request.app[SESSIONS]() as session:
        lead = await get_lead(session, lead_id)
        history = await stage_history(session, lead_id)
        touches = await list_touches(session, lead_id=lead_id, limit=TIMELINE_TOUCHES)
        delivered = await deliveries(session, touches)
        forms = await form_submissions(session, lead_id)
        email_notes = await list_notes(session, lead_id, limit=EMAIL_NOTES, kind=NoteKind.EMAIL)
    return web.json_response(
        {
            "lead": lead_json(lead),
            "history": [event_json(e) for e in history],
            "touches": [touch_json(t, delivered.get(t.id)) for t in touches],
            "forms": [form_json(f) for f in forms],
            "email_notes": [email_note_json(n) for n in email_notes],
        }
    )


@routes.post("/api/leads/{lead_id}/transitions")
async def move_lead(request: web.Request) -> web.Response:
    """Move a lead to another stage through the stage machine (409 when not allowed)."""
    lead_id = _lead_id(request)
    body = await read_json_object(request)
    try:
        move = TransitionIn.model_validate(body)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    async with request.app[SESSIONS].begin() as session:
        event = await transition(
            session,
            lead_id,
            move.to,
            reason=move.reason,
            actor=move.actor,
            now=utcnow(),
            expected_from=move.expected_from,
        )
        lead = await get_lead(session, lead_id)
        await reload_lead(session, lead)
    request.app[METRICS].transitions.labels(event.from_stage or "", event.to_stage).inc()
    return web.json_response({"lead": lead_json(lead), "event": event_json(event)})


# -- erasure --


@routes.delete("/api/leads/{lead_id}")
async def erase_lead_view(request: web.Request) -> web.Response:
    """Forget the person (``scheduler.store.erasure``): 200 with the anonymous lead and its stage
    history, again on every repeat; 404 for an unknown id. ``?actor=`` names who asked (the
    audit row's actor, default ``api``)."""
    lead_id = _lead_id(request)
    actor = request.query.get("actor", ERASE_ACTOR).strip()
    if not 1 <= len(actor) <= 100 or not actor.isprintable():
        raise ApiError(400, "bad_query", "actor must be 1 to 100 printable characters")
    async with request.app[SESSIONS].begin() as session:
        report = await erase_lead(
            session,
            lead_id,
            actor=actor,
            hash_key=hash_key(request.app[SETTINGS]),
            now=utcnow(),
        )
        lead = await get_lead(session, lead_id)
        history = await stage_history(session, lead_id)
    return web.json_response(
        {
            "lead": lead_json(lead),
            "history": [event_json(e) for e in history],
            "erased": True,
            "already_erased": report.already_erased,
        }
    )
