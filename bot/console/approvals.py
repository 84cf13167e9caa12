"""Approvals: every draft waiting for a person, to read, edit, approve or skip (issue 14,
item 5), one at a time or in bulk.

The same rules as the signed one-click links and ``POST /api/touches/{id}/approve|reject``:
every action goes through the sweeper (:meth:`~scheduler.followups.sweeper.Sweeper.approve`
and ``reject``), which locks the lead, re-checks it (replied, booked, opted out, paused…)
and sends through the outbox under the touch's one key. So a second approve sends nothing
and says the draft was already handled, and a lead that replied meanwhile is not written to.
The approver recorded is the signed-in user's email.

Who sees what: an admin every draft; a rep the drafts of their own leads and of leads
nobody owns yet (an unowned hot lead must not wait for an admin), the console's one rule
(:func:`scheduler.pipeline.lead_actions.may_act`). Acting on another rep's lead's draft is
refused (403; in bulk, that item is reported as refused).

Hot leads' first replies (steps with ``approval: hot``) come first: minutes count there;
reactivation drafts can wait for the afternoon. The page shows at most :data:`PAGE`
drafts; the queue is worked down, so the rest appear as these are handled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.console.render import current, is_admin, render
from bot.http.appkeys import SESSIONS
from bot.http.followups import CADENCE, SWEEPER
from bot.http.inputs import clean_text, parse_id
from bot.notify import lead_label
from scheduler.errors import NotFoundError, StoreError
from scheduler.followups.cadence import Cadence
from scheduler.followups.touches import TouchStateError, TouchStatus
from scheduler.pipeline import lead_actions
from scheduler.pipeline.lead_actions import LeadActor
from scheduler.pipeline.users import ConsoleLogin
from scheduler.store import approval_queue
from scheduler.store.models import Lead, Touch, utcnow

log = logging.getLogger("leadbot.console.approvals")
routes = web.RouteTableDef()

PATH = "/console/approvals"
PAGE = 100
"""The most drafts one page shows, and one bulk action handles."""
MAX_TEXT = 4000  # as POST /api/touches/{id}/approve
MAX_REASON = 2000
APPROVER_LENGTH = 100  # touches.approved_by


@dataclass(frozen=True, slots=True)
class DraftResult:
    """What an action did to one draft, as the page reports it. ``result`` is one of
    approved, skipped, already handled, not sent, refused, failed."""

    touch_id: int
    lead: str
    result: str
    detail: str

    @property
    def ok(self) -> bool:
        """Whether the action did what was asked."""
        return self.result in ("approved", "skipped")


@dataclass(frozen=True, slots=True)
class _Card:
    """One waiting draft as the page shows it."""

    touch: Touch
    lead: Lead
    owner: str | None
    channel: str
    subject: str
    why: str
    since: datetime


# -- who may act --------------------------------------------------------------------------


def _may_act(login: ConsoleLogin, lead: Lead) -> bool:
    """The console's one rule (:func:`scheduler.pipeline.lead_actions.may_act`): admins on
    every lead, a rep on their own leads and unowned ones."""
    actor = LeadActor(email=login.user.email, admin=is_admin(login), rep_id=login.user.rep_id)
    return lead_actions.may_act(actor, lead.owner_rep_id)


def _owners(login: ConsoleLogin) -> set[int] | None:
    """The owners whose leads' drafts ``login`` sees (None: all), besides unowned leads."""
    if is_admin(login):
        return None
    return set() if login.user.rep_id is None else {login.user.rep_id}


def _approver(login: ConsoleLogin) -> str:
    return login.user.email[:APPROVER_LENGTH]


# -- what the page shows ------------------------------------------------------------------


def hot_steps(cadence: Cadence) -> list[tuple[str, str]]:
    """``(sequence, step)`` of the steps held only for hot leads: their first replies."""
    return [
        (name, step.id)
        for name, sequence in cadence.sequences.items()
        for step in sequence.steps
        if step.approval == "hot"
    ]


def why_waiting(cadence: Cadence, touch: Touch) -> str:
    """Why the draft waits for a person, from the cadence step that held it."""
    step = cadence.step(touch.sequence, touch.step)
    if step is None:
        return "Held for approval; its step is no longer in the cadence file."
    if step.approval == "hot":
        return "Hot lead: a person approves the first reply before it goes."
    purpose = step.purpose.replace("_", " ")
    return f"Every {purpose} draft ({touch.sequence} · {touch.step}) is read before it goes."


def _card(cadence: Cadence, touch: Touch, lead: Lead, owner: str | None) -> _Card:
    meta = touch.meta or {}
    return _Card(
        touch=touch,
        lead=lead,
        owner=owner,
        channel=str(meta.get("channel") or touch.channel),
        subject=str(meta.get("subject") or ""),
        why=why_waiting(cadence, touch),
        # Claimed when it was drafted; held since then.
        since=touch.claimed_at or touch.due_at,
    )


async def _page(
    request: web.Request, results: list[DraftResult] | None = None, *, status: int = 200
) -> web.Response:
    login = current(request)
    cadence = request.app[CADENCE]
    owners = _owners(login)
    # ?touch=ID (the digest's edit link): that draft first, however far down the queue.
    focus = parse_id(request.query.get("touch", ""))
    async with request.app[SESSIONS]() as session:
        rows = await approval_queue.waiting_drafts(
            session, owners=owners, first=hot_steps(cadence), limit=PAGE, focus=focus
        )
        total = await approval_queue.count_waiting(session, owners=owners)
    cards = [_card(cadence, touch, lead, owner) for touch, lead, owner in rows]
    return render(
        request,
        "approvals.html",
        {
            "cards": cards,
            "total": total,
            "results": results or [],
            "max_text": MAX_TEXT,
            "max_reason": MAX_REASON,
        },
        status=status,
    )


@routes.get(PATH)
async def approvals_page(request: web.Request) -> web.Response:
    """The drafts waiting for the signed-in user, hot leads' first replies first."""
    return await _page(request)


# -- acting on drafts ---------------------------------------------------------------------


def _touch_id(request: web.Request) -> int:
    touch_id = parse_id(request.match_info["touch_id"])
    if touch_id is None:
        raise web.HTTPNotFound(reason="no such draft")
    return touch_id


async def _form(request: web.Request) -> Any:
    return await request.post()  # already read (and cached) by the CSRF check


def _text(form: Any) -> str | None:
    """The edited draft (None: approve it as drafted). Browsers send a textarea's line
    breaks as CRLF; the draft is stored with LF, so an untouched draft compares equal."""
    if form.get("as_is"):
        return None
    raw = form.get("text")
    if not isinstance(raw, str):
        return None
    text = clean_text(raw).replace("\r\n", "\n").strip()  # PostgreSQL refuses NUL
    if not text:
        raise web.HTTPBadRequest(reason="the draft is empty: write a message or skip it")
    if len(text) > MAX_TEXT:
        raise web.HTTPBadRequest(reason=f"a draft has at most {MAX_TEXT} characters")
    return text


def _reason(form: Any) -> str:
    raw = form.get("reason")
    reason = clean_text(raw).strip() if isinstance(raw, str) else ""
    if not reason:
        raise web.HTTPBadRequest(reason="say why the draft is skipped")
    if len(reason) > MAX_REASON:
        raise web.HTTPBadRequest(reason=f"a reason has at most {MAX_REASON} characters")
    return reason


async def _already(request: web.Request, touch_id: int, label: str) -> DraftResult:
    """The draft is no longer waiting: say what became of it."""
    async with request.app[SESSIONS]() as session:
        found = (await approval_queue.touches_and_leads(session, [touch_id])).get(touch_id)
    if found is None:
        return DraftResult(touch_id, label, "failed", "the draft no longer exists")
    touch = found[0]
    by = f" by {touch.approved_by}" if touch.approved_by else ""
    note = f" ({touch.note})" if touch.note else ""
    return DraftResult(
        touch_id, label, "already handled", f"it is {touch.status}{by}{note}; nothing was sent"
    )


def _approved(touch: Touch, label: str) -> DraftResult:
    status, note = touch.status, touch.note or ""
    if status == TouchStatus.SENT.value:
        return DraftResult(touch.id, label, "approved", "sent")
    if status == TouchStatus.QUEUED.value:
        return DraftResult(touch.id, label, "approved", "queued: it goes out with the outbox")
    if status == TouchStatus.SKIPPED.value:
        return DraftResult(
            touch.id, label, "not sent", f"the lead can no longer be written to: {note}"
        )
    return DraftResult(touch.id, label, "failed", f"{status}: {note or 'the channel refused it'}")


async def _approve(
    request: web.Request, touch: Touch, lead: Lead, text: str | None
) -> DraftResult:
    label = lead_label(lead)
    try:
        done = await request.app[SWEEPER].approve(
            touch.id, by=_approver(current(request)), text=text, now=utcnow()
        )
    except NotFoundError:
        return DraftResult(touch.id, label, "failed", "the draft no longer exists")
    except TouchStateError:
        return await _already(request, touch.id, label)
    return _approved(done, label)


async def _skip(request: web.Request, touch: Touch, lead: Lead, reason: str) -> DraftResult:
    label = lead_label(lead)
    try:
        await request.app[SWEEPER].reject(
            touch.id, by=_approver(current(request)), reason=reason, now=utcnow()
        )
    except NotFoundError:
        return DraftResult(touch.id, label, "failed", "the draft no longer exists")
    except TouchStateError:
        return await _already(request, touch.id, label)
    return DraftResult(touch.id, label, "skipped", reason)


async def _one(request: web.Request) -> tuple[Touch, Lead]:
    """The draft the path names, if the signed-in user may act on it."""
    touch_id = _touch_id(request)
    async with request.app[SESSIONS]() as session:
        found = (await approval_queue.touches_and_leads(session, [touch_id])).get(touch_id)
    if found is None:
        raise web.HTTPNotFound(reason="no such draft")
    if not _may_act(current(request), found[1]):
        raise web.HTTPForbidden(reason="this draft is for another rep's lead")
    return found


def _status(result: DraftResult) -> int:
    return 409 if result.result in ("already handled", "not sent") else 200


@routes.post(PATH + r"/{touch_id:\d+}/approve")
async def approve_one(request: web.Request) -> web.Response:
    """Approve one draft, as edited in its text box (or as drafted, with ``as_is``)."""
    touch, lead = await _one(request)
    result = await _approve(request, touch, lead, _text(await _form(request)))
    log.info("touch %s: %s by console user %s", touch.id, result.result, current(request).user.id)
    return await _page(request, [result], status=_status(result))


@routes.post(PATH + r"/{touch_id:\d+}/skip")
async def skip_one(request: web.Request) -> web.Response:
    """Skip one draft, with a reason; the rest of the lead's cadence goes on."""
    touch, lead = await _one(request)
    result = await _skip(request, touch, lead, _reason(await _form(request)))
    log.info("touch %s: %s by console user %s", touch.id, result.result, current(request).user.id)
    return await _page(request, [result], status=_status(result))


def _selected(form: Any) -> list[int]:
    ids: list[int] = []
    for raw in form.getall("touch", []):
        touch_id = parse_id(raw) if isinstance(raw, str) else None
        if touch_id is None:
            raise web.HTTPBadRequest(reason="a selected draft id is not valid")
        if touch_id not in ids:
            ids.append(touch_id)
    if not ids:
        raise web.HTTPBadRequest(reason="select at least one draft")
    if len(ids) > PAGE:
        raise web.HTTPBadRequest(reason=f"at most {PAGE} drafts at once")
    return ids


@routes.post(PATH + "/bulk")
async def bulk(request: web.Request) -> web.Response:
    """Approve (as drafted) or skip (with one reason) the selected drafts, each on its own:
    one draft's outcome never stops the others, and each is reported."""
    form = await _form(request)
    action = form.get("action")
    if action not in ("approve", "skip"):
        raise web.HTTPBadRequest(reason="choose approve or skip")
    ids = _selected(form)
    reason = _reason(form) if action == "skip" else ""
    login = current(request)
    async with request.app[SESSIONS]() as session:
        found = await approval_queue.touches_and_leads(session, ids)
    results: list[DraftResult] = []
    for touch_id in ids:
        if touch_id not in found:
            results.append(DraftResult(touch_id, f"draft {touch_id}", "failed", "no such draft"))
            continue
        touch, lead = found[touch_id]
        if not _may_act(login, lead):
            results.append(
                DraftResult(touch_id, lead_label(lead), "refused", "another rep's lead")
            )
            continue
        try:
            if action == "approve":
                results.append(await _approve(request, touch, lead, None))
            else:
                results.append(await _skip(request, touch, lead, reason))
        except StoreError as exc:
            results.append(DraftResult(touch_id, lead_label(lead), "failed", exc.message))
    log.info(
        "bulk %s of %d drafts by console user %s: %s",
        action,
        len(ids),
        login.user.id,
        ", ".join(f"{r.touch_id}={r.result}" for r in results),
    )
    return await _page(request, results)
