"""Helpers for the follow-up timing tests: a compressed cadence, leads, a recording channel."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scheduler.delivery.outbox import Dispatcher, Receipt
from scheduler.followups.cadence import Cadence, load_cadence
from scheduler.followups.drafting import TemplateDrafter
from scheduler.followups.sweeper import SweepConfig, Sweeper
from scheduler.pipeline.leads import LeadIn, intake

Sessions = async_sessionmaker[AsyncSession]
DEFAULT_TEMPLATES = (
    Path(__file__).resolve().parents[2] / "scheduler" / "followups" / "cadences" / "templates"
)
# Monday 2 March 2026, 09:30 UTC.
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)

COMPRESSED = """\
version: test-compressed-1
sender: {company: Acme, name: Sam}
quiet_hours: {enabled: false}
business_days: {enabled: false}
resources: {resource: "https://acme.example/case"}
sequences:
  new_lead:
    after_last: 30s
    steps:
      - {id: first_reply, offset: 0, channel: email, purpose: first_reply,
         template: first_reply.txt, approval: hot}
      - {id: day1, offset: 1s, channel: email, purpose: personal_follow_up,
         template: personal_follow_up.txt}
      - {id: day3, offset: 3s, channel: email, purpose: value_nudge, template: value_nudge.txt}
      - {id: day7, offset: 7s, channel: email, purpose: soft_check_in,
         template: soft_check_in.txt}
      - {id: day14, offset: 14s, channel: email, purpose: final_touch,
         template: final_touch.txt}
  approved:
    steps:
      - {id: personal, offset: 0, channel: email, purpose: personal_follow_up,
         template: personal_follow_up.txt, approval: true}
      - {id: nudge, offset: 5s, channel: email, purpose: value_nudge, template: value_nudge.txt}
  reactivation:
    start_when_dormant_for: 60d
    steps:
      - {id: reactivate, offset: 0, channel: email, purpose: reactivation,
         template: reactivation.txt}
"""


def write_cadence(tmp_path: Path, text: str = COMPRESSED) -> Path:
    """A cadence file in ``tmp_path`` with the default templates beside it."""
    if not (tmp_path / "templates").exists():
        shutil.copytree(DEFAULT_TEMPLATES, tmp_path / "templates")
    path = tmp_path / "cadence.yaml"
    path.write_text(text, "utf-8")
    return path


def compressed(tmp_path: Path) -> Cadence:
    """The compressed cadence, loaded."""
    return load_cadence(write_cadence(tmp_path))


async def make_lead(sessions: Sessions, n: int = 1, **fields: Any) -> int:
    """A lead (email lead by default) in stage contacted unless ``stage`` is given."""
    data = {"name": f"Dana Smith{n}", "email": f"dana{n}@example.com", "company": "Northwind"}
    data.update({k: v for k, v in fields.items() if k in LeadIn.model_fields})
    async with sessions.begin() as session:
        lead = (await intake(session, LeadIn(**data), default_region="US", now=NOW)).lead
        for key, value in fields.items():
            if key not in LeadIn.model_fields:
                setattr(lead, key, value)
    return lead.id


class RecordingChannel:
    """A channel that accepts everything and records (recipient, payload) in order."""

    def __init__(self, name: str = "email") -> None:
        self.name = name
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def send(self, recipient: str, payload: Mapping[str, Any]) -> Receipt:
        await asyncio.sleep(0)  # let concurrent senders interleave
        self.sent.append((recipient, dict(payload)))
        return Receipt(external_id=f"rec-{len(self.sent)}")


def frozen() -> datetime:
    """A clock that never moves: a sweep then runs entirely at the ``now`` it is given."""
    return NOW


def make_sweeper(
    sessions: Sessions,
    cadence: Cadence,
    channel: RecordingChannel | None = None,
    *,
    clock: Callable[[], datetime] = frozen,
    **config: Any,
) -> tuple[Sweeper, RecordingChannel]:
    """A sweeper with the template drafter, delivering through a recording channel; its
    clock stands still unless the test passes one (so ``sweep(now)`` runs at ``now``)."""
    channel = channel or RecordingChannel()
    dispatcher = Dispatcher(sessions, {"email": channel, "whatsapp": channel})
    sweeper = Sweeper(
        sessions,
        cadence,
        TemplateDrafter(cadence),
        dispatcher,
        links={"calendly": "https://calendly.com/acme/intro", "public": ""},
        config=SweepConfig(**config),
        clock=clock,
    )
    return sweeper, channel
