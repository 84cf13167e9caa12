"""The stage machine: the only code that changes ``leads.stage``.

The allowed moves are one table. A move is one transaction: a conditional UPDATE that
applies only if the lead is still in the stage (and version) the caller saw, plus the audit
row. Two racing moves of one lead cannot both apply: the second finds the version bumped and
fails with :class:`StaleStageError`.
"""

from __future__ import annotations

from datetime import datetime
from types import MappingProxyType

from scheduler.errors import (
    IllegalTransitionError,
    NotFoundError,
    ReasonRequiredError,
    StaleStageError,
)
from scheduler.pipeline.outbound_events import emit, stage_events
from scheduler.store import Session
from scheduler.store.events import record_stage_event
from scheduler.store.leads import move_stage, stage_and_version
from scheduler.store.models import Stage, StageEvent

S = Stage
ALLOWED_MOVES: MappingProxyType[Stage, frozenset[Stage]] = MappingProxyType(
    {
        S.NEW: frozenset({S.CONTACTED, S.LOST}),
        S.CONTACTED: frozenset({S.QUALIFIED, S.LOST, S.DORMANT}),
        S.QUALIFIED: frozenset({S.PROPOSAL_SENT, S.LOST, S.DORMANT}),
        S.PROPOSAL_SENT: frozenset({S.WON, S.LOST, S.DORMANT}),
        S.DORMANT: frozenset({S.CONTACTED, S.LOST}),
        # Reopening a lost lead is allowed only with a reason (checked in validate_move).
        S.LOST: frozenset({S.CONTACTED}),
        S.WON: frozenset(),
    }
)
"""Every allowed move, from → {to}. Anything else is an :class:`IllegalTransitionError`."""


def validate_move(lead_id: int, current: Stage, to: Stage, reason: str | None) -> None:
    """Raise the typed error for a move that must not apply; return for one that may."""
    if to not in ALLOWED_MOVES[current]:
        allowed = ", ".join(sorted(ALLOWED_MOVES[current])) or "none (final stage)"
        raise IllegalTransitionError(
            f"lead {lead_id} cannot move from {current} to {to}; allowed: {allowed}",
            lead_id=lead_id,
            from_stage=current,
            to_stage=to,
        )
    if (to is Stage.LOST or current is Stage.LOST) and not (reason and reason.strip()):
        what = "moving a lead to lost" if to is Stage.LOST else "reopening a lost lead"
        raise ReasonRequiredError(
            f"{what} needs a reason (lead {lead_id})",
            lead_id=lead_id,
            from_stage=current,
            to_stage=to,
        )


async def transition(
    session: Session,
    lead_id: int,
    to: Stage | str,
    *,
    reason: str | None,
    actor: str,
    now: datetime,
    expected_from: Stage | str | None = None,
    current: tuple[Stage | str, int] | None = None,
) -> StageEvent:
    """Move a lead to ``to`` and write the audit row, in the caller's transaction.

    ``expected_from`` guards against acting on a stale view ("move to qualified, if it is
    still contacted"); without it the stage read here is the one checked. ``current`` is the
    stage and version the caller read in this transaction, which saves reading them again
    (the update is fenced on them either way). The caller commits; if this raises, nothing
    was written.
    """
    target = Stage(to)
    await session.flush()  # the Core statements below do not autoflush the caller's changes
    if current is None:
        current = await stage_and_version(session, lead_id)
        if current is None:
            raise NotFoundError(f"lead {lead_id} does not exist")
    stage, version = Stage(current[0]), current[1]
    if expected_from is not None and Stage(expected_from) is not stage:
        raise StaleStageError(
            f"lead {lead_id} is {stage}, not {Stage(expected_from)}",
            lead_id=lead_id,
            from_stage=stage,
            to_stage=target,
        )
    validate_move(lead_id, stage, target, reason)
    clean_reason = reason.strip() if reason else None
    values: dict[str, object] = {"stage": target.value, "version": version + 1, "updated_at": now}
    if target is Stage.LOST:
        values["lost_reason"] = clean_reason
    elif stage is Stage.LOST:
        values["lost_reason"] = None
    if not await move_stage(session, lead_id, stage=stage.value, version=version, values=values):
        raise StaleStageError(
            f"lead {lead_id} moved while {target} was being applied; reload and retry",
            lead_id=lead_id,
            from_stage=stage,
            to_stage=target,
        )
    return await record_event(
        session,
        lead_id=lead_id,
        from_stage=stage.value,
        to_stage=target.value,
        reason=clean_reason,
        actor=actor,
        at=now,
    )


async def record_event(
    session: Session,
    *,
    lead_id: int,
    from_stage: str | None,
    to_stage: str,
    reason: str | None,
    actor: str,
    at: datetime,
) -> StageEvent:
    """Write one audit row in the caller's transaction (a prebuilt Core insert: no ORM
    flush), and its outbound events; the audit row, with its id. ``from_stage`` None is the
    lead's creation."""
    audit = {
        "lead_id": lead_id,
        "from_stage": from_stage,
        "to_stage": to_stage,
        "reason": reason,
        "actor": actor,
        "at": at,
    }
    event_id = await record_stage_event(session, audit)
    # Outbound events (lead.created, lead.stage_changed, lead.qualified) commit or roll back
    # with the move itself.
    found = stage_events(
        audit_id=event_id,
        lead_id=lead_id,
        from_stage=from_stage,
        to_stage=to_stage,
        reason=reason,
        actor=actor,
        at=at,
    )
    await emit(session, *found)
    return StageEvent(id=event_id, **audit)
