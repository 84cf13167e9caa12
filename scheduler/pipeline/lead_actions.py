"""What a console user may do to one lead, and doing it: move its stage, give it an owner,
write a note, pause or resume the bot.

Who may act (:func:`may_act`): an admin on every lead; a rep on the leads they own and on
leads nobody owns. Anyone signed in may read any lead (the pipeline is shared). Erasing is
narrower (:func:`may_erase`): admins and the lead's owner only, as it cannot be undone and
an unowned lead is nobody's to forget.

Every action runs in the caller's transaction and starts with :func:`lock_for`: the lead
row is locked first (the store's one lock order), and the permission and the lead's state
are checked on that fresh read, so an erasure or another person's action on the same lead
takes turns with this one. What the person saw is carried in the form (the stage and
version, the owner) and checked against it: acting on a stale view is refused, never
applied to something the person did not see.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from scheduler.errors import NotFoundError, StaleStageError, StoreError
from scheduler.pipeline.identity import points_for_lead
from scheduler.pipeline.stages import ALLOWED_MOVES, transition
from scheduler.pipeline.takeover import resume_dialog
from scheduler.store import Session
from scheduler.store.lead_controls import set_bot_paused, set_owner
from scheduler.store.leads import lock_lead
from scheduler.store.models import Lead, Rep, Stage, StageEvent
from scheduler.store.notes import NoteKind, add_note
from scheduler.store.reps import list_reps

MAX_NOTE = 10_000  # characters of one note
MAX_REASON = 2_000  # characters of a stage move's reason


@dataclass(frozen=True, slots=True)
class LeadActor:
    """Who acts on a lead: their email (the audit rows' actor), whether they are an
    admin, and the rep they are (None for an admin)."""

    email: str
    admin: bool
    rep_id: int | None


class NotYourLeadError(StoreError):
    """A rep acting on a lead another rep owns (or erasing one they do not own)."""

    code = "not_your_lead"
    status = 403


class LeadErasedError(StoreError):
    """The lead was erased: it keeps its stage history and takes no more actions."""

    code = "lead_erased"
    status = 409


class StaleOwnerError(StoreError):
    """The lead's owner changed since the person looked."""

    code = "stale_owner"
    status = 409


class InvalidActionError(StoreError):
    """An action the lead cannot take as asked (an empty note, an inactive rep, …)."""

    code = "invalid_action"
    status = 422


def may_act(actor: LeadActor, owner_rep_id: int | None) -> bool:
    """Whether ``actor`` may change a lead owned by ``owner_rep_id`` (None: nobody)."""
    return actor.admin or owner_rep_id is None or owner_rep_id == actor.rep_id


def may_erase(actor: LeadActor, owner_rep_id: int | None) -> bool:
    """Whether ``actor`` may erase a lead owned by ``owner_rep_id``."""
    return actor.admin or (actor.rep_id is not None and owner_rep_id == actor.rep_id)


def moves_from(stage: Stage | str) -> list[Stage]:
    """The stages a lead at ``stage`` may move to, in pipeline order."""
    allowed = ALLOWED_MOVES[Stage(stage)]
    return [s for s in Stage if s in allowed]


async def lock_for(
    session: Session, lead_id: int, actor: LeadActor, *, erase: bool = False
) -> Lead:
    """The lead, locked, once ``actor`` may act on it (``erase``: may erase it); else
    :class:`NotFoundError`, :class:`LeadErasedError` or :class:`NotYourLeadError`."""
    lead = await lock_lead(session, lead_id)
    if lead is None:
        raise NotFoundError(f"lead {lead_id} does not exist")
    if lead.erased_at is not None:
        raise LeadErasedError(f"lead {lead_id} was erased: it takes no more actions")
    allowed = may_erase if erase else may_act
    if not allowed(actor, lead.owner_rep_id):
        what = "erase" if erase else "change"
        raise NotYourLeadError(f"only an admin or the rep who owns lead {lead_id} may {what} it")
    return lead


async def move(
    session: Session,
    lead_id: int,
    to: Stage | str,
    *,
    reason: str | None,
    seen: tuple[Stage | str, int],
    actor: LeadActor,
    now: datetime,
) -> StageEvent:
    """Move the lead to ``to`` through the stage machine, if it is still at the stage and
    version the person saw (``seen``); :class:`StaleStageError` when it moved meanwhile."""
    lead = await lock_for(session, lead_id, actor)
    seen_stage, seen_version = Stage(seen[0]), seen[1]
    if (lead.stage, lead.version) != (seen_stage.value, seen_version):
        raise StaleStageError(
            f"this lead changed while you were looking at it: it is {Stage(lead.stage)} "
            f"now (it was {seen_stage}). Nothing was moved: check it and try again.",
            lead_id=lead_id,
            from_stage=lead.stage,
            to_stage=str(to),
        )
    if reason is not None and len(reason) > MAX_REASON:
        raise InvalidActionError(f"a reason has at most {MAX_REASON} characters")
    return await transition(
        session,
        lead_id,
        to,
        reason=reason,
        actor=actor.email[:100],  # the audit column's width (emails may be longer)
        now=now,
        current=(lead.stage, lead.version),
    )


async def assign(
    session: Session,
    lead_id: int,
    rep_id: int,
    *,
    seen_owner: int | None,
    actor: LeadActor,
    now: datetime,
) -> Rep:
    """Make the active rep ``rep_id`` the lead's owner, if its owner is still the one the
    person saw (``seen_owner``); the change is noted on the timeline."""
    lead = await lock_for(session, lead_id, actor)
    reps = {rep.id: rep for rep in await list_reps(session)}
    rep = reps.get(rep_id)
    if rep is None or not rep.active:
        raise InvalidActionError("choose one of the active reps")
    if lead.owner_rep_id != seen_owner:
        current = reps.get(lead.owner_rep_id) if lead.owner_rep_id else None
        now_owned = f"{current.name} owns it now" if current else "nobody owns it now"
        raise StaleOwnerError(
            f"the owner of this lead changed while you were looking at it ({now_owned}). "
            "Nothing was changed: check it and try again."
        )
    if lead.owner_rep_id == rep_id:
        return rep
    if not await set_owner(session, lead_id, rep_id, seen=seen_owner, now=now):
        raise StaleOwnerError("the owner of this lead changed meanwhile; try again")
    before = reps.get(seen_owner) if seen_owner else None
    await add_note(
        session,
        lead_id,
        kind=NoteKind.OWNER,
        author=actor.email,
        body=f"Owner: {before.name if before else 'nobody'} → {rep.name}",
        data={"from": seen_owner, "to": rep_id},
        now=now,
    )
    return rep


async def write_note(
    session: Session, lead_id: int, body: str, *, actor: LeadActor, now: datetime
) -> int:
    """Add the person's note to the lead's timeline; its id."""
    text = body.strip()
    if not text:
        raise InvalidActionError("a note needs some text")
    if len(text) > MAX_NOTE:
        raise InvalidActionError(f"a note has at most {MAX_NOTE} characters")
    await lock_for(session, lead_id, actor)
    return await add_note(
        session, lead_id, kind=NoteKind.NOTE, author=actor.email, body=text, now=now
    )


async def pause_bot(
    session: Session, lead_id: int, paused: bool, *, actor: LeadActor, now: datetime
) -> bool:
    """Pause (or resume) the bot for the lead, noted on the timeline; False when it
    already was. A conversation a rep has taken over is resumed by handing it back on the
    take-over page, not here."""
    lead = await lock_for(session, lead_id, actor)
    if not paused and lead.taken_by_user_id is not None:
        raise InvalidActionError(
            "a rep has taken over this conversation: hand it back to the bot on the take-over page"
        )
    if not await set_bot_paused(session, lead_id, paused, now):
        return False
    if not paused:
        await resume_dialog(session, lead_id, now)  # a handed-off dialog answers again
    kind = NoteKind.BOT_PAUSED if paused else NoteKind.BOT_RESUMED
    body = "Bot paused" if paused else "Bot resumed"
    await add_note(session, lead_id, kind=kind, author=actor.email, body=body, now=now)
    return True


async def opt_out_addresses(session: Session, lead: Lead) -> list[str]:
    """Every address the lead may be reached at (email, phone, WhatsApp ids): what marking
    it opted out suppresses."""
    points = [point.value for point in await points_for_lead(session, lead.id)]
    return list(dict.fromkeys(a for a in (lead.email, lead.phone, *points) if a))


async def note_opt_out(session: Session, lead_id: int, *, actor: LeadActor, now: datetime) -> None:
    """Note on the timeline that ``actor`` marked the lead opted out."""
    await add_note(
        session,
        lead_id,
        kind=NoteKind.OPTED_OUT,
        author=actor.email,
        body="Marked opted out: no more messages, follow-ups cancelled",
        now=now,
    )
