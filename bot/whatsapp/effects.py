"""Carry out a turn's engine actions in the turn's transaction.

Messages become outbox rows keyed by the inbound wamid (``wa:<wamid>:<n>``), so handling the
same turn twice can never send twice. Stage moves go through the stage machine; one the
machine refuses (a lead already further along, moved by a rep meanwhile) is logged and
skipped: the conversation must not fail because the pipeline moved on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.booking_link import booking_link
from bot.whatsapp.hooks import Hooks
from bot.whatsapp.payloads import WINDOW_KEY, to_payload, window_until
from dialogs.actions import (
    CALENDLY_PLACEHOLDER,
    Action,
    CancelFollowUps,
    HandOff,
    NotifyRep,
    OptOut,
    Qualify,
    ScheduleFollowUps,
    SendButtons,
    SendCtaUrl,
    SendList,
    SendText,
    SetSlot,
    SetStage,
)
from dialogs.actions import Message as MessageAction
from dialogs.session import Session
from scheduler.delivery.outbox import CONFIRMS_OPT_OUT, enqueue
from scheduler.errors import StoreError
from scheduler.pipeline.outbound_events import Event, EventKind, emit
from scheduler.pipeline.stages import transition
from scheduler.store import Session as DbSession
from scheduler.store.leads import note_stage_move
from scheduler.store.models import Lead, Stage
from scheduler.store.suppressions import SuppressionReason, suppress

log = logging.getLogger("leadbot.inbox")
ACTOR = "whatsapp-bot"
NO_BOOKING_LINK = "A colleague will send you a link to book the call shortly."
_NOT_STARTED: set[str] = set()  # sequences already reported missing from the cadence


@dataclass(slots=True)
class TurnContext:
    """What the actions of one turn need to know, and the outbox rows they created."""

    lead: Lead
    session: Session
    key_base: str  # "wa:<first wamid of the turn>"
    reply_to: str  # the last inbound wamid
    now: datetime
    calendly_url: str
    prompt_version: str | None = None
    outbox_ids: list[int] = field(default_factory=list)
    cancelled: bool = False
    # The WhatsApp address replies go to (the wa_id Meta sent, or a BSUID); default: phone.
    address: str | None = None


async def apply(db: DbSession, ctx: TurnContext, actions: list[Action], hooks: Hooks) -> None:
    """Execute ``actions`` (in order) for ``ctx.lead`` inside the caller's transaction."""
    messages = 0
    slots_changed = False
    for action in actions:
        match action:
            case SetSlot() | Qualify():
                slots_changed = True
            case SetStage(to, reason):
                await _move(db, ctx, to, reason)
            case HandOff():
                ctx.lead.bot_paused = True
                # The console's take-over queue: waiting for a person since this turn (a
                # second request while still waiting keeps the first one's time).
                if ctx.lead.human_requested_at is None:
                    ctx.lead.human_requested_at = ctx.now
                    await _handoff_event(db, ctx)
            case OptOut(evidence):
                ctx.lead.opted_out_at = ctx.now
                # The phone and the WhatsApp address (a wa_id in an older form, a BSUID).
                for address in dict.fromkeys(a for a in (ctx.lead.phone, ctx.address) if a):
                    await suppress(
                        db,
                        address,
                        reason=SuppressionReason.REPLY_OPTOUT,
                        detail=evidence,
                        now=ctx.now,
                    )
            case CancelFollowUps(reason):
                await cancel_follow_ups(db, ctx, hooks, reason)
            case ScheduleFollowUps(sequence):
                await _start_follow_ups(db, ctx, hooks, sequence)
            case NotifyRep(kind, summary):
                ids = await hooks.notify_reps(
                    db,
                    lead=ctx.lead,
                    kind=kind,
                    summary=summary,
                    details=_details(ctx),
                    now=ctx.now,
                )
                ctx.outbox_ids.extend(ids)
            case SendText() | SendButtons() | SendList() | SendCtaUrl():
                await _send(db, ctx, action, messages)
                messages += 1
    if slots_changed:
        ctx.lead.qualification = qualification_record(ctx.session, ctx.prompt_version)


async def _handoff_event(db: DbSession, ctx: TurnContext) -> None:
    """``conversation.handoff_requested``, once per request (keyed by the turn)."""
    data = {"channel": "whatsapp", "requested_at": ctx.now, "turn": ctx.key_base}
    fact = f"handoff:{ctx.key_base}"
    await emit(db, Event(EventKind.HANDOFF_REQUESTED, fact, ctx.lead.id, ctx.now, data))


async def cancel_follow_ups(db: DbSession, ctx: TurnContext, hooks: Hooks, reason: str) -> None:
    """Cancel the lead's pending touches once per turn (a reply stops the cadence)."""
    if not ctx.cancelled:
        ctx.cancelled = True
        await hooks.cancel_pending(db, ctx.lead.id, reason=reason, now=ctx.now)


async def _start_follow_ups(db: DbSession, ctx: TurnContext, hooks: Hooks, name: str) -> None:
    # From their last message if Meta's clock is ahead of ours: a sequence that started
    # before it would count that very message as a reply and skip itself.
    start = max(ctx.now, ctx.lead.last_inbound_at or ctx.now)
    try:
        # No savepoint (two round trips on every turn that leaves a question open):
        # start_sequence raises only before it writes (an unknown sequence, a lead gone),
        # and its insert is one statement.
        await hooks.start_sequence(db, ctx.lead.id, name, now=start)
    except (KeyError, StoreError) as exc:  # an unknown sequence: a config error, not a crash
        # Loud once per sequence, then quiet: a cadence file without the scripts'
        # quiet_sequence would otherwise log on every turn (the next-step check still
        # counts and logs each lead left without follow-ups).
        level = logging.DEBUG if name in _NOT_STARTED else logging.ERROR
        _NOT_STARTED.add(name)
        log.log(level, "lead %s: follow-up sequence %r not started: %s", ctx.lead.id, name, exc)


def qualification_record(session: Session, prompt_version: str | None) -> dict[str, Any]:
    """``Lead.qualification``: the scorer's decision (when made) plus the answers, with the
    script and prompt versions that produced them."""
    record: dict[str, Any] = dict(session.qualification or {})
    record.update(
        script_id=session.script_id,
        script_version=session.script_version,
        slots={name: slot.model_dump(mode="json") for name, slot in session.slots.items()},
    )
    if session.variant is not None:  # the A/B arm the outcome is credited to
        record["experiment"] = {"id": session.experiment, "variant": session.variant}
    record.setdefault("prompt_version", prompt_version)
    record.setdefault("decision", None)
    return record


async def _send(db: DbSession, ctx: TurnContext, action: MessageAction, n: int) -> None:
    if ctx.lead.taken_by_user_id is not None:
        # A person took the conversation after this turn was planned (the lead is read
        # again under its lock at commit): the bot says nothing.
        return
    payload: dict[str, Any]
    if isinstance(action, SendCtaUrl) and action.url == CALENDLY_PLACEHOLDER:
        if ctx.calendly_url:
            url = booking_link(
                ctx.calendly_url, token=ctx.lead.token, name=ctx.lead.name, email=ctx.lead.email
            )
            payload = to_payload(action, url=url)
        else:
            log.warning("LEADBOT_CALENDLY_URL is unset: lead %s gets no booking link", ctx.lead.id)
            payload = to_payload(SendText(f"{action.body}\n\n{NO_BOOKING_LINK}"))
    else:
        payload = to_payload(action)
    payload["reply_to"] = ctx.reply_to
    if ctx.lead.opted_out_at is not None:
        # Only an opt-out's own turn answers an opted-out lead: the confirmation goes out.
        payload[CONFIRMS_OPT_OUT] = True
    if ctx.lead.last_inbound_at is not None:
        # A reply: the window is open until a day after their last message. Carried in the
        # payload so the channel need not look the lead up again for every send.
        payload[WINDOW_KEY] = window_until(ctx.lead.last_inbound_at)
    recipient = ctx.address or ctx.lead.phone
    if not recipient:
        return
    item_id = await enqueue(
        db,
        key=f"{ctx.key_base}:{n}",
        channel="whatsapp",
        recipient=recipient,
        payload=payload,
        now=ctx.now,
        lead_id=ctx.lead.id,
    )
    if item_id is not None:
        ctx.outbox_ids.append(item_id)


async def _move(db: DbSession, ctx: TurnContext, to: str, reason: str) -> None:
    if ctx.lead.stage == to:
        return
    try:  # (transition flushes pending changes first: set_committed_value would hide them)
        event = await transition(
            db,
            ctx.lead.id,
            to,
            reason=reason,
            actor=ACTOR,
            now=ctx.now,
            current=(ctx.lead.stage, ctx.lead.version),
        )
    except StoreError as exc:  # refused before writing anything: the turn goes on
        log.info("lead %s: stage move to %s skipped: %s", ctx.lead.id, to, exc)
        return
    # The move was written by a Core UPDATE; tell the loaded lead what it wrote instead of
    # reading the row back (a round trip per move).
    note_stage_move(ctx.lead, event, ctx.now)


async def revive_dormant(
    db: DbSession, lead: Lead, hooks: Hooks, *, now: datetime, wamid: str, text: str
) -> list[int]:
    """A dormant lead wrote (a reactivation reached them): Dormant → Contacted, and the owner
    is told (kind ``replied``); the conversation goes on here, on WhatsApp. The new outbox
    ids of the notification; nothing for a lead in any other stage."""
    if lead.stage != Stage.DORMANT.value:
        return []
    try:
        event = await transition(
            db,
            lead.id,
            Stage.CONTACTED,
            reason="replied on WhatsApp",
            actor=ACTOR,
            now=now,
            current=(lead.stage, lead.version),
        )
    except StoreError as exc:  # moved meanwhile: that move stands, the turn goes on
        log.info("lead %s: dormant lead wrote, not moved: %s", lead.id, exc)
        return []
    note_stage_move(lead, event, now)
    return list(
        await hooks.notify_reps(
            db,
            lead=lead,
            kind="replied",
            summary=f"on WhatsApp: {text}"[:200],
            details={"wamid": wamid, "channel": "whatsapp", "text": text[:2000]},
            now=now,
        )
    )


def _details(ctx: TurnContext) -> dict[str, Any]:
    return {
        "channel": "whatsapp",
        "phone": ctx.lead.phone,
        "name": ctx.lead.name,
        "script_id": ctx.session.script_id,
        "script_version": ctx.session.script_version,
        "slots": {k: v.model_dump(mode="json") for k, v in ctx.session.slots.items()},
        "qualification": ctx.session.qualification,
    }
