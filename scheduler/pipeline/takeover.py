"""Who has a conversation: a console user takes it (the bot goes quiet), an admin may take
it from someone, and the one who has it hands it back to the bot (issue 14, item 4).

Two users never both own one conversation: each change is one conditional UPDATE of the
lead row fenced on the owner read (:mod:`scheduler.store.takeover`); the loser of a race
is told who has it. Taking a conversation nobody asked a person for is allowed (a rep
jumps in); the bot stays quiet all the same.

Handing back also wakes the dialog: a conversation the bot handed off sits in the engine's
``handoff`` status, in which it answers nothing, so the stored session goes back to where
the script can go on (its decision if it had made one, else the questions). The session is
written after the lead row, in the store's lock order, in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dialogs.session import Session as DialogSession
from scheduler.errors import NotFoundError, StoreError
from scheduler.store import Session, conversations
from scheduler.store import takeover as store
from scheduler.store.takeover import TakeoverEntry

HANDED_OFF = "handoff"
DECISIONS = frozenset({"qualified", "disqualified"})


class TakeoverError(StoreError):
    """The conversation cannot change hands as asked (the message says why)."""

    code = "takeover_refused"
    status = 409


class ConversationTakenError(TakeoverError):
    """Someone else has the conversation (``holder``: who)."""

    code = "conversation_taken"

    def __init__(self, message: str, *, holder: str | None) -> None:
        super().__init__(message)
        self.holder = holder


class NotYourConversationError(TakeoverError):
    """Only the user who has the conversation (or an admin, to hand it back) may do this."""

    code = "not_your_conversation"
    status = 403


def holder_label(entry: TakeoverEntry) -> str:
    """Who has the conversation, for people: ``Ana (ana@team.example)``."""
    if entry.holder and entry.holder_email and entry.holder != entry.holder_email:
        return f"{entry.holder} ({entry.holder_email})"
    return entry.holder or entry.holder_email or f"user {entry.taken_by_user_id}"


async def _entry(session: Session, lead_id: int) -> TakeoverEntry:
    found = await store.entry(session, lead_id)
    if found is None:
        raise NotFoundError(f"lead {lead_id} does not exist")
    return found


def _taken(entry: TakeoverEntry) -> ConversationTakenError:
    since = entry.taken_at.strftime("%H:%M UTC") if entry.taken_at else "a moment ago"
    who = holder_label(entry)
    return ConversationTakenError(f"{who} has this conversation (since {since})", holder=who)


async def take(session: Session, lead_id: int, *, user_id: int, now: datetime) -> None:
    """Give the conversation to ``user_id``; the bot stays quiet. Taking one's own again
    is a no-op; raise :class:`ConversationTakenError` (naming who has it) when someone
    else does."""
    if await store.take(session, lead_id, user_id=user_id, now=now):
        return
    entry = await _entry(session, lead_id)
    if entry.taken_by_user_id == user_id:
        return
    if entry.taken_by_user_id is not None:
        raise _taken(entry)
    if entry.opted_out:
        raise TakeoverError("the lead opted out: nothing may be sent to them")
    raise TakeoverError("the conversation changed meanwhile: reload and try again")


async def take_from(
    session: Session, lead_id: int, *, from_user_id: int, user_id: int, now: datetime
) -> None:
    """An admin takes the conversation from ``from_user_id`` (who they saw had it); raise
    :class:`TakeoverError` when it changed hands meanwhile."""
    if await store.take_from(
        session, lead_id, from_user_id=from_user_id, user_id=user_id, now=now
    ):
        return
    entry = await _entry(session, lead_id)
    if entry.taken_by_user_id == user_id:
        return
    if entry.taken_by_user_id is not None:
        raise _taken(entry)
    raise TakeoverError("nobody has this conversation any more: take it instead")


async def hand_back(
    session: Session,
    lead_id: int,
    *,
    user_id: int,
    admin: bool,
    owner_user_id: int | None,
    now: datetime,
) -> None:
    """Give the conversation back to the bot. The owner may; an admin may for anyone,
    fenced on the owner they saw (``owner_user_id``; default: themselves). Nobody waits
    for a person afterwards, and the dialog goes on at the prospect's next message."""
    owner = user_id if owner_user_id is None else owner_user_id
    if owner != user_id and not admin:
        raise NotYourConversationError("only the person who has the conversation hands it back")
    if not await store.hand_back(session, lead_id, owner_user_id=owner, now=now):
        entry = await _entry(session, lead_id)
        if entry.taken_by_user_id is None:
            raise TakeoverError("nobody has this conversation: the bot has it already")
        if not admin:
            raise NotYourConversationError(
                f"{holder_label(entry)} has this conversation: only they can hand it back"
            )
        raise _taken(entry)
    await resume_dialog(session, lead_id, now)


async def resume_dialog(session: Session, lead_id: int, now: datetime) -> None:
    """Take the lead's stored dialog out of its handed-off state (:func:`resumed_state`):
    a bot given the conversation back answers the prospect's next message."""
    for _, state in await conversations.dialog_states(session, [lead_id]):
        resumed = resumed_state(state)
        if resumed is not None:
            await conversations.save_sessions(
                session,
                [
                    {
                        "lead_id": lead_id,
                        "script_id": resumed["script_id"],
                        "script_version": resumed["script_version"],
                        "state": resumed,
                        "updated_at": now,
                    }
                ],
            )


def resumed_state(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """The stored dialog session of a conversation handed back to the bot, or None when it
    needs no change. One the bot had handed off goes back to its decision (qualified or
    disqualified: the bot answers courteously) or, undecided, to its questions, with its
    count of unanswered questions reset (else the next one would hand off again)."""
    if not state or state.get("status") != HANDED_OFF:
        return None
    session = DialogSession.model_validate(state)
    decision = (session.qualification or {}).get("decision")
    status = decision if decision in DECISIONS else "active"
    changed = session.model_copy(
        update={"status": status, "open_slot": None, "unanswered_questions": 0}
    )
    return changed.model_dump(mode="json")
