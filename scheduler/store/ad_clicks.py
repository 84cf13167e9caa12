"""The Click-to-WhatsApp ad click a lead came from: its ``ctwa_clid`` and when it happened.

Read by the Conversions API subscriber (:mod:`crm_sync.conversions`) inside the transaction of
the change it reports. The click id sits in the lead's attribution (``ctwa_clid``, from the
``referral`` of the first message after the click; or given at intake); the click time is
``ctwa_clicked_at`` (that message's timestamp) or, when absent, the lead's creation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.store.models import Lead

CLICK_ID = "ctwa_clid"
CLICKED_AT = "ctwa_clicked_at"
MAX_CLICK_ID = 500  # Meta's click ids are ~90 characters; anything far longer is not one
_CHUNK = 500  # values per IN (…) list


@dataclass(frozen=True, slots=True)
class AdClick:
    """A lead's ad click: Meta's click id and when the click happened (UTC)."""

    ctwa_clid: str
    clicked_at: datetime


async def ad_clicks(session: AsyncSession, lead_ids: Sequence[int]) -> dict[int, AdClick]:
    """``lead id → its ad click`` for those of ``lead_ids`` that came from one (erased
    leads never do: their attribution is gone, and they are skipped even before)."""
    found: dict[int, AdClick] = {}
    ids = sorted(set(lead_ids))
    for first in range(0, len(ids), _CHUNK):
        rows = await session.execute(
            select(Lead.id, Lead.attribution, Lead.created_at).where(
                Lead.id.in_(ids[first : first + _CHUNK]), Lead.erased_at.is_(None)
            )
        )
        for row in rows:
            click = _click(row.attribution or {}, row.created_at)
            if click is not None:
                found[row.id] = click
    return found


def _click(attribution: dict[str, object], created_at: datetime) -> AdClick | None:
    clid = attribution.get(CLICK_ID)
    if not isinstance(clid, str) or not clid.strip() or len(clid) > MAX_CLICK_ID:
        return None
    return AdClick(clid.strip(), _when(attribution.get(CLICKED_AT)) or created_at)


def _when(value: object) -> datetime | None:
    """An ISO timestamp from the attribution (UTC-aware), or None when there is none."""
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
