"""What a person changes on a lead outside the stage machine: who owns it, and whether the
bot may talk to it. Each write is fenced on the value the person saw (the store's FENCING
rule): it applies only if nobody changed that value meanwhile, and says whether it did.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.store.models import Lead


async def set_owner(
    session: AsyncSession, lead_id: int, rep_id: int, *, seen: int | None, now: datetime
) -> bool:
    """Make ``rep_id`` the lead's owner if its owner is still ``seen`` (None: nobody);
    False, with nothing written, when it changed meanwhile."""
    owner = Lead.owner_rep_id.is_(None) if seen is None else Lead.owner_rep_id == seen
    result = await session.execute(
        update(Lead)
        .where(Lead.id == lead_id, owner)
        .values(owner_rep_id=rep_id, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


async def set_bot_paused(session: AsyncSession, lead_id: int, paused: bool, now: datetime) -> bool:
    """Pause (or resume) the bot for the lead; False when it already was. Resuming also
    clears a pending request for a person (``human_requested_at``): whoever resumes the bot
    answers that request by giving the conversation back to it."""
    values: dict[str, object] = {"bot_paused": paused, "updated_at": now}
    if not paused:
        values["human_requested_at"] = None
    result = await session.execute(
        update(Lead)
        .where(Lead.id == lead_id, Lead.bot_paused.is_(not paused))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1
