"""The lead page (``/console/leads/{id}``): who the lead is, where it stands, how it was
qualified, everything that happened to it on one timeline, and the actions a person takes
on it.

The timeline is newest first, a page of :data:`TIMELINE_LIMIT` entries at a time ("show
older" loads the next page; with htmx in place, without a reload). An erased lead shows
as erased, with its stage history only, and takes no actions.

Actions are plain POST forms (the CSRF token in the ``csrf_token`` field). Each runs in
one transaction through :mod:`scheduler.pipeline.lead_actions` (who may act, fenced on
what the person saw) and ends in a redirect back here with a message; a refusal (a stale
move, Lost without a reason, another rep's lead) shows the page again with what went
wrong and the status that says it (409, 422, 403). Marking opted out reuses the opt-out
of the unsubscribe link (:func:`bot.email.actions.opt_out`) for every address of the
lead; erasing is the API's erasure (:func:`scheduler.store.erasure.erase_lead`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from bot.console.lead_view import (
    campaign_of,
    cursor_param,
    facts,
    parse_cursor,
    qualification_view,
    stage_label,
    timeline_item,
)
from bot.console.render import current, is_admin, render
from bot.email.actions import opt_out
from bot.http.appkeys import METRICS, SESSIONS, SETTINGS
from bot.http.inputs import clean_text, parse_id
from bot.http.privacy import hash_key
from scheduler.errors import NotFoundError, StoreError
from scheduler.pipeline import lead_actions
from scheduler.pipeline.lead_actions import InvalidActionError, LeadActor, lock_for
from scheduler.store import Session
from scheduler.store.erasure import erase_lead
from scheduler.store.leads import find_lead
from scheduler.store.models import Stage, StageEvent, utcnow
from scheduler.store.reps import list_reps
from scheduler.store.suppressions import SuppressionReason
from scheduler.store.timeline import TimelineCursor, TimelinePage, lead_timeline

routes = web.RouteTableDef()

PAGE = "/console/leads/{lead_id}"
TIMELINE_LIMIT = 200  # entries a page of the timeline shows: a huge lead never stalls it
FLASHES = {
    "moved": "Stage moved.",
    "owner": "Owner changed.",
    "note": "Note added.",
    "paused": "The bot is paused for this lead: it will not write to them.",
    "resumed": "The bot is back on for this lead.",
    "opted_out": "Marked opted out: no more messages, pending follow-ups cancelled.",
    "erased": "The person's data was erased; their stage history stays.",
    "unchanged": "Nothing to change: it already was so.",
}
"""The message each ``?done=`` code shows (codes, not text: a link cannot make the page
say anything else)."""

Action = Callable[[Session, LeadActor, datetime], Awaitable[str]]


def _lead_id(request: web.Request) -> int:
    lead_id = parse_id(request.match_info["lead_id"])
    if lead_id is None:
        raise web.HTTPNotFound(reason="no such lead")
    return lead_id


def _actor(request: web.Request) -> LeadActor:
    login = current(request)
    return LeadActor(email=login.user.email, admin=is_admin(login), rep_id=login.user.rep_id)


def _before(request: web.Request) -> TimelineCursor | None:
    raw = request.query.get("before")
    if raw is None:
        return None
    cursor = parse_cursor(raw)
    if cursor is None:
        raise web.HTTPBadRequest(reason="that 'show older' link is broken: reload the lead")
    return cursor


async def _timeline(
    session: Session, lead_id: int, *, erased: bool, before: TimelineCursor | None
) -> TimelinePage:
    return await lead_timeline(
        session, lead_id, limit=TIMELINE_LIMIT, before=before, stage_events_only=erased
    )


def _timeline_values(lead_id: int, page: TimelinePage) -> dict[str, Any]:
    now = utcnow()
    return {
        "lead_id": lead_id,
        "items": [timeline_item(entry, now) for entry in page.entries],
        "older": cursor_param(page.older) if page.older is not None else None,
    }


async def _show(
    request: web.Request,
    lead_id: int,
    *,
    before: TimelineCursor | None = None,
    flash: str = "",
    error: str = "",
    status: int = 200,
) -> web.Response:
    """The lead page (``error``: an action was refused; shown above everything)."""
    actor = _actor(request)
    async with request.app[SESSIONS]() as session:
        lead = await find_lead(session, lead_id)
        if lead is None:
            raise web.HTTPNotFound(reason=f"lead {lead_id} does not exist")
        reps = await list_reps(session)
        page = await _timeline(session, lead_id, erased=lead.erased_at is not None, before=before)
    owner = next((rep for rep in reps if rep.id == lead.owner_rep_id), None)
    moves = lead_actions.moves_from(lead.stage)
    values = {
        "lead": lead,
        "stage": stage_label(lead.stage),
        "owner": owner,
        "reps": [rep for rep in reps if rep.active],
        "may_act": lead_actions.may_act(actor, lead.owner_rep_id),
        "may_erase": lead_actions.may_erase(actor, lead.owner_rep_id),
        "moves": [(s.value, stage_label(s)) for s in moves if s is not Stage.LOST],
        "may_lose": Stage.LOST in moves,
        "reopening": lead.stage == Stage.LOST.value,
        "qualification": qualification_view(lead.qualification),
        "campaign": campaign_of(lead.attribution),
        "attribution": facts(lead.attribution, skip=("campaign",)),
        "enrichment": facts(lead.enrichment, skip=("version",)),
        "waiting": lead.human_requested_at is not None and lead.taken_by_user_id is None,
        "flash": flash,
        "error": error,
        "first_page": before is None,
        **_timeline_values(lead_id, page),
    }
    return render(request, "lead.html", values, status=status)


@routes.get(PAGE)
async def lead_page(request: web.Request) -> web.StreamResponse:
    """The lead page; ``?before=`` starts the timeline further back."""
    done = FLASHES.get(request.query.get("done", ""), "")
    return await _show(request, _lead_id(request), before=_before(request), flash=done)


@routes.get(PAGE + "/timeline")
async def older_entries(request: web.Request) -> web.StreamResponse:
    """The timeline entries before ``?before=`` (htmx puts them under the ones shown)."""
    lead_id = _lead_id(request)
    async with request.app[SESSIONS]() as session:
        lead = await find_lead(session, lead_id)
        if lead is None:
            raise web.HTTPNotFound(reason=f"lead {lead_id} does not exist")
        page = await _timeline(
            session, lead_id, erased=lead.erased_at is not None, before=_before(request)
        )
    return render(request, "lead_timeline.html", _timeline_values(lead_id, page))


async def _act(
    request: web.Request,
    lead_id: int,
    action: Action,
    committed: Callable[[], None] | None = None,
) -> web.StreamResponse:
    """Run ``action`` in one transaction (then ``committed``); back to the page with its
    message, or the page again with the refusal."""
    try:
        async with request.app[SESSIONS].begin() as session:
            done = await action(session, _actor(request), utcnow())
    except NotFoundError:
        raise
    except StoreError as exc:
        return await _show(request, lead_id, error=exc.message, status=exc.status)
    if committed is not None:
        committed()
    raise web.HTTPSeeOther(f"/console/leads/{lead_id}?done={done}")


def _field(form: MultiDictProxy[Any], name: str) -> str:
    value = form.get(name)
    return clean_text(value) if isinstance(value, str) else ""  # PostgreSQL refuses NUL


def _stage(text: str) -> Stage:
    try:
        return Stage(text)
    except ValueError:
        raise web.HTTPBadRequest(reason=f"{text!r} is not a stage") from None


@routes.post(PAGE + "/stage")
async def move_stage(request: web.Request) -> web.StreamResponse:
    """Move the lead (``to``, ``reason``), fenced on the ``from`` stage and ``version``
    the form was drawn with."""
    lead_id = _lead_id(request)
    form = await request.post()
    to, seen_stage = _stage(_field(form, "to")), _stage(_field(form, "from"))
    seen_version = parse_id(_field(form, "version"))
    if seen_version is None:
        raise web.HTTPBadRequest(reason="the form lacks the lead's version: reload the page")
    reason = _field(form, "reason").strip() or None
    moved: list[StageEvent] = []

    async def action(session: Session, actor: LeadActor, now: datetime) -> str:
        moved.append(
            await lead_actions.move(
                session,
                lead_id,
                to,
                reason=reason,
                seen=(seen_stage, seen_version),
                actor=actor,
                now=now,
            )
        )
        return "moved"

    def count() -> None:
        for event in moved:
            request.app[METRICS].transitions.labels(event.from_stage or "", event.to_stage).inc()

    return await _act(request, lead_id, action, count)


@routes.post(PAGE + "/owner")
async def assign_owner(request: web.Request) -> web.StreamResponse:
    """Give the lead to the active rep ``rep_id``, if its owner is still ``owner_seen``."""
    lead_id = _lead_id(request)
    form = await request.post()
    rep_id = parse_id(_field(form, "rep_id"))
    seen = _field(form, "owner_seen")
    seen_owner = parse_id(seen) if seen else None
    if rep_id is None or (seen and seen_owner is None):
        raise web.HTTPBadRequest(reason="choose a rep")

    async def action(session: Session, actor: LeadActor, now: datetime) -> str:
        await lead_actions.assign(
            session, lead_id, rep_id, seen_owner=seen_owner, actor=actor, now=now
        )
        return "owner" if rep_id != seen_owner else "unchanged"

    return await _act(request, lead_id, action)


@routes.post(PAGE + "/notes")
async def add_note(request: web.Request) -> web.StreamResponse:
    """Add a note (``body``) to the lead's timeline."""
    lead_id = _lead_id(request)
    body = _field(await request.post(), "body")

    async def action(session: Session, actor: LeadActor, now: datetime) -> str:
        await lead_actions.write_note(session, lead_id, body, actor=actor, now=now)
        return "note"

    return await _act(request, lead_id, action)


@routes.post(PAGE + "/bot")
async def pause_bot(request: web.Request) -> web.StreamResponse:
    """Pause (``paused=1``) or resume (``paused=0``) the bot for the lead."""
    lead_id = _lead_id(request)
    paused = _field(await request.post(), "paused")
    if paused not in ("0", "1"):
        raise web.HTTPBadRequest(reason="say whether to pause (1) or resume (0) the bot")

    async def action(session: Session, actor: LeadActor, now: datetime) -> str:
        want = paused == "1"
        if not await lead_actions.pause_bot(session, lead_id, want, actor=actor, now=now):
            return "unchanged"
        return "paused" if want else "resumed"

    return await _act(request, lead_id, action)


@routes.post(PAGE + "/opt-out")
async def mark_opted_out(request: web.Request) -> web.StreamResponse:
    """Mark the lead opted out the way an unsubscribe does: every address of theirs
    suppressed, the lead flagged, its pending follow-ups cancelled."""
    lead_id = _lead_id(request)

    async def action(session: Session, actor: LeadActor, now: datetime) -> str:
        lead = await lock_for(session, lead_id, actor)
        if lead.opted_out_at is not None:
            return "unchanged"
        addresses = await lead_actions.opt_out_addresses(session, lead)
        if not addresses:
            raise InvalidActionError("this lead has no address to suppress")
        for address in addresses:
            await opt_out(
                session,
                address,
                lead_id=lead_id,
                reason=SuppressionReason.UNSUBSCRIBE,
                detail=f"marked opted out in the console by {actor.email}",
                now=now,
            )
        await lead_actions.note_opt_out(session, lead_id, actor=actor, now=now)
        return "opted_out"

    return await _act(request, lead_id, action)


@routes.post(PAGE + "/erase")
async def erase(request: web.Request) -> web.StreamResponse:
    """Forget the person (admins, and the rep who owns the lead): the API's erasure."""
    lead_id = _lead_id(request)
    key = hash_key(request.app[SETTINGS])

    async def action(session: Session, actor: LeadActor, now: datetime) -> str:
        await lock_for(session, lead_id, actor, erase=True)
        await erase_lead(session, lead_id, actor=actor.email, hash_key=key, now=now)
        return "erased"

    return await _act(request, lead_id, action)
