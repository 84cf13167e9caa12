"""Reactivation starts and the digest's reads (issue 15, item 1), on SQLite and Postgres.

The per-rep daily cap, owners for unowned leads, never for opted-out or erased people, once
per dormancy; the digest's due date in the rep's zone and its reasons.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from scheduler.errors import InvalidLeadError
from scheduler.followups.digest import collect, due_date, quiet_reason, rep_zone
from scheduler.followups.drafting import LLMDrafter
from scheduler.followups.lifecycle import start_reactivations
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.pipeline.stages import transition
from scheduler.store import conversations
from scheduler.store.erasure import erase_lead
from scheduler.store.models import Lead, Rep, Touch
from scheduler.store.notes import add_note
from scheduler.store.reactivation import digest_reps
from scheduler.store.reps import add_rep, set_timezone
from tests.scheduler.cadence_support import NOW, Sessions, compressed, make_sweeper
from tests.support.fakes.openai_server import FakeOpenAI

D = timedelta(days=1)
PROMPTS = Path(__file__).resolve().parents[2] / "prompts"


async def dormant_lead(sessions: Sessions, n: int, owner: int | None, **fields: object) -> int:
    """A lead that went dormant at NOW (through the stage machine)."""
    async with sessions.begin() as session:
        lead = (
            await intake(
                session,
                LeadIn(email=f"lead{n}@example.com", name=f"Lead {n}"),
                default_region="US",
                now=NOW - 30 * D,
            )
        ).lead
        lead.owner_rep_id = owner
        for key, value in fields.items():
            setattr(lead, key, value)
        await session.flush()
        for stage in ("contacted", "dormant"):
            await transition(session, lead.id, stage, reason="test", actor="test", now=NOW)
        return lead.id


async def rep(sessions: Sessions, name: str, timezone: str | None = None) -> int:
    async with sessions.begin() as session:
        made = await add_rep(
            session,
            name=name,
            email=f"{name.lower()}@acme.example",
            whatsapp=None,
            now=NOW,
            timezone=timezone,
        )
        return made.id


async def started_for(sessions: Sessions) -> dict[int | None, int]:
    async with sessions() as session:
        rows = await session.execute(
            select(Lead.owner_rep_id, func.count())
            .join(Touch, Touch.lead_id == Lead.id)
            .where(Touch.sequence == "reactivation")
            .group_by(Lead.owner_rep_id)
        )
        return {owner: n for owner, n in rows}


async def test_at_most_n_a_rep_a_day_the_rest_on_later_days(
    sessions: Sessions, tmp_path: Path
) -> None:
    cadence = compressed(tmp_path)
    ana, ben = await rep(sessions, "Ana"), await rep(sessions, "Ben")
    for n in range(5):
        await dormant_lead(sessions, n, ana)
        await dormant_lead(sessions, 10 + n, ben)
    day61 = NOW + 61 * D
    assert await start_reactivations(sessions, cadence, now=day61, per_rep_day=2) == 4
    assert await started_for(sessions) == {ana: 2, ben: 2}
    # Later the same day (or in another process): the day's share is taken.
    assert await start_reactivations(sessions, cadence, now=day61 + D / 2, per_rep_day=2) == 0
    assert await start_reactivations(sessions, cadence, now=day61 + D, per_rep_day=2) == 4
    assert await start_reactivations(sessions, cadence, now=day61 + 2 * D, per_rep_day=2) == 2
    assert await started_for(sessions) == {ana: 5, ben: 5}
    # Once per dormancy: nothing more, however long they stay dormant.
    assert await start_reactivations(sessions, cadence, now=day61 + 9 * D, per_rep_day=2) == 0


async def test_unowned_leads_get_an_owner_and_opted_out_or_erased_people_nothing(
    sessions: Sessions, tmp_path: Path
) -> None:
    cadence = compressed(tmp_path)
    ana = await rep(sessions, "Ana")
    unowned = await dormant_lead(sessions, 1, None)
    opted_out = await dormant_lead(sessions, 2, ana, opted_out_at=NOW)
    erased = await dormant_lead(sessions, 3, ana)
    async with sessions.begin() as session:
        await erase_lead(session, erased, actor="test", hash_key=b"k" * 32, now=NOW)
    assert await start_reactivations(sessions, cadence, now=NOW + 61 * D, per_rep_day=5) == 1
    async with sessions() as session:
        lead = await session.get_one(Lead, unowned)
        touched = set(
            await session.scalars(select(Touch.lead_id).where(Touch.sequence == "reactivation"))
        )
    assert lead.owner_rep_id == ana and touched == {unowned}
    assert opted_out not in touched and erased not in touched


def test_the_digest_is_due_from_the_reps_local_hour() -> None:
    zone = ZoneInfo("Asia/Tokyo")  # UTC+9, no daylight saving
    assert due_date(zone, 8, datetime(2026, 6, 1, 22, 59, tzinfo=UTC)) is None  # 07:59
    assert due_date(zone, 8, datetime(2026, 6, 1, 23, 0, tzinfo=UTC)) == date(2026, 6, 2)
    assert due_date(zone, 8, datetime(2026, 6, 2, 14, 59, tzinfo=UTC)) == date(2026, 6, 2)
    assert due_date(zone, 8, datetime(2026, 6, 2, 15, 0, tzinfo=UTC)) is None  # 00:00 next day
    # Unknown or unset zones fall back to the default.
    assert rep_zone("Mars/Olympus", "Europe/Berlin") == ZoneInfo("Europe/Berlin")
    assert rep_zone(None, "UTC") == ZoneInfo("UTC")


def test_the_reason_a_rep_reads() -> None:
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    assert (
        quiet_reason("budget", now - 74 * D, now)
        == "went quiet after the budget question, 74 days ago"
    )
    assert quiet_reason("team_size", now - D, now) == (
        "went quiet after the team size question, 1 day ago"
    )
    assert quiet_reason(None, None, now) == "went quiet"


async def test_rep_time_zones_are_iana_names(sessions: Sessions) -> None:
    ana = await rep(sessions, "Ana", "America/Chicago")
    async with sessions.begin() as session:
        with pytest.raises(InvalidLeadError, match="not a time zone"):
            await add_rep(
                session,
                name="Bo",
                email="bo@acme.example",
                whatsapp=None,
                now=NOW,
                timezone="Central Time",
            )
    async with sessions.begin() as session:
        with pytest.raises(InvalidLeadError, match="not a time zone"):
            await set_timezone(session, ana, "Europe/Atlantis")
        await set_timezone(session, ana, "Europe/Lisbon")
    async with sessions() as session:
        assert (await session.get_one(Rep, ana)).timezone == "Europe/Lisbon"
        [found] = await digest_reps(session, ana)
    assert found.timezone == "Europe/Lisbon"


async def test_the_digest_lists_only_the_reps_waiting_reactivation_drafts(
    sessions: Sessions, tmp_path: Path
) -> None:
    cadence = compressed(tmp_path)
    ana, ben = await rep(sessions, "Ana"), await rep(sessions, "Ben")
    mine = await dormant_lead(sessions, 1, ana, last_inbound_at=NOW - 10 * D)
    theirs = await dormant_lead(sessions, 2, ben)
    await start_reactivations(sessions, cadence, now=NOW + 61 * D)
    async with sessions.begin() as session:
        touches = list(await session.scalars(select(Touch).order_by(Touch.id)))
        for touch in touches:
            touch.status, touch.draft = "awaiting_approval", f"Hello {touch.lead_id}"
        assert {t.lead_id for t in touches} == {mine, theirs}
    async with sessions() as session:
        [ana_rep] = await digest_reps(session, ana)
        digest = await collect(
            session,
            ana_rep,
            ["reactivation"],
            local_date=date(2026, 5, 2),
            now=NOW + 62 * D,
            limit=10,
        )
    [item] = digest.items
    assert item.lead_id == mine and digest.total == 1
    assert item.reason == "went quiet, 72 days ago"  # since their last message
    assert digest.key == f"digest:rep:{ana}:2026-05-02"


async def test_the_llm_drafts_from_history_qualification_and_notes(
    sessions: Sessions, tmp_path: Path
) -> None:
    cadence = compressed(tmp_path)
    ana = await rep(sessions, "Ana")
    lead_id = await dormant_lead(sessions, 1, ana, qualification={"tier": "warm"})
    async with sessions.begin() as session:
        conversations.add_message(
            session,
            lead_id=lead_id,
            channel="email",
            direction="in",
            external_id="<m1@example.com>",
            body="We would revisit this after our Q3 budget review.",
            payload={},
            created_at=NOW - 80 * D,
        )
        await add_note(
            session,
            lead_id,
            kind="note",
            author="ana@acme.example",
            body="Budget frozen until Q3",
            now=NOW - 79 * D,
        )
    await start_reactivations(sessions, cadence, now=NOW + 61 * D)
    async with FakeOpenAI() as fake:
        fake.reply_text("Hi Lead, your Q3 budget review should be done by now. Catch up?")
        drafter = LLMDrafter(
            cadence, model="m", api_key="k", base_url=fake.base_url, prompts_dir=PROMPTS
        )
        sweeper, _ = make_sweeper(sessions, cadence)
        sweeper.drafter = drafter
        await sweeper.sweep(NOW + 61 * D)
        human = fake.messages()[-1]["content"]
    assert "note: Budget frozen until Q3" in human
    assert "qualification tier: warm" in human
    assert "Q3 budget review" in human  # their last message
    async with sessions() as session:
        touch = await session.scalar(select(Touch).where(Touch.sequence == "reactivation"))
    assert touch is not None  # (the compressed cadence's step needs no approval)
    assert touch.draft is not None and touch.draft.startswith("Hi Lead, your Q3")
    assert touch.meta["drafter"] == "llm"
