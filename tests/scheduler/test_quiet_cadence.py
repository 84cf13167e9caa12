"""The WhatsApp quiet cadence and the next-step invariant (issue 12, item 6).

A compressed cadence (seconds instead of days) and a controlled ``now``: the nudge, each
step, dormant after the last one, reactivation after the (compressed) 60 days; and the
periodic check that finds live leads without a next step, and repairs them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from scheduler.followups.cadence import CadenceError, load_cadence
from scheduler.followups.lifecycle import mark_dormant, start_reactivations
from scheduler.followups.next_steps import NextStepConfig, check_next_steps
from scheduler.followups.touches import due_at, start_sequence
from scheduler.store.models import InboxItem, Lead, OutboxItem, Touch
from tests.scheduler.cadence_support import NOW, Sessions, make_lead, make_sweeper, write_cadence

S = timedelta(seconds=1)
DEFAULT = (
    Path(__file__).resolve().parents[2] / "scheduler" / "followups" / "cadences" / "default.yaml"
)
QUIET = """\
version: test-quiet-1
sender: {company: Acme, name: Sam}
quiet_hours: {enabled: false}
business_days: {enabled: false}
resources: {case_study: "https://acme.example/case"}
sequences:
  whatsapp_quiet:
    repeat: true
    after_last: 10s
    steps:
      - {id: nudge, offset: 2s, deadline: 5s, channel: whatsapp, purpose: conversation_nudge,
         template: conversation_nudge.txt}
      - {id: day1, offset: 4s, channel: whatsapp, purpose: personal_follow_up,
         template: personal_follow_up.txt}
      - {id: day3, offset: 6s, channel: whatsapp, purpose: value_nudge, template: value_nudge.txt}
      - {id: day7, offset: 8s, channel: whatsapp, purpose: soft_check_in,
         template: soft_check_in.txt}
      - {id: day14, offset: 10s, channel: whatsapp, purpose: final_touch,
         template: final_touch.txt}
  reactivation:
    start_when_dormant_for: 60s
    steps:
      - {id: reactivate, offset: 0, channel: email, purpose: reactivation,
         template: reactivation.txt}
"""
CHECK = NextStepConfig(grace=5 * S)
PHONE = "+14155550100"


def quiet(tmp_path: Path) -> Any:
    return load_cadence(write_cadence(tmp_path, QUIET))


async def chat_lead(sessions: Sessions, n: int = 1, **fields: Any) -> int:
    """A WhatsApp prospect (no email) who wrote at NOW and was answered: contacted."""
    values: dict[str, Any] = {
        "email": None,
        "phone": f"+1415555{n:04d}",
        "stage": "contacted",
        "last_inbound_at": NOW,
        "last_outbound_at": NOW,
    }
    values.update(fields)
    return await make_lead(sessions, n, **values)


async def start(
    sessions: Sessions,
    cadence: Any,
    lead_id: int,
    at: datetime = NOW,
    sequence: str = "whatsapp_quiet",
) -> None:
    async with sessions.begin() as session:
        await start_sequence(session, lead_id, sequence, cadence=cadence, now=at)


async def rows(sessions: Sessions, lead_id: int) -> list[tuple[str, int, str]]:
    async with sessions() as session:
        found = await session.execute(
            select(Touch.step, Touch.cycle, Touch.status)
            .where(Touch.lead_id == lead_id)
            .order_by(Touch.id)
        )
        return [tuple(r) for r in found]  # type: ignore[misc]


async def stage_of(sessions: Sessions, lead_id: int) -> str:
    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
        assert lead is not None
        return lead.stage


# -- the cadence ---------------------------------------------------------------------------


async def test_quiet_prospect_gets_nudge_steps_dormant_then_reactivation(
    sessions: Sessions, tmp_path: Path
) -> None:
    cadence = quiet(tmp_path)
    sweeper, channel = make_sweeper(sessions, cadence)
    lead_id = await chat_lead(sessions)
    await start(sessions, cadence, lead_id)  # the bot's reply went out at NOW
    sent_at: dict[int, str] = {}
    for second in range(12):
        await sweeper.sweep(NOW + second * S)
        for recipient, payload in channel.sent[len(sent_at) :]:
            assert recipient == PHONE.replace("0100", "0001")
            sent_at[second] = payload["text"]
    # The nudge two seconds in (inside the window), then each step at its offset.
    assert list(sent_at) == [2, 4, 6, 8, 10]
    assert sent_at[2].startswith("Hi Dana, still there?")
    assert "close the loop" in sent_at[10]
    async with sessions() as session:
        assert set(await session.scalars(select(OutboxItem.channel))) == {"whatsapp"}
        # No window in the payload: the WhatsApp channel looks the lead's window up and
        # sends the approved template (LEADBOT_WHATSAPP_TEMPLATE) once it has closed.
        payloads = list(await session.scalars(select(OutboxItem.payload)))
        assert all("window_until" not in p for p in payloads)
    # Dormant after_last (10 s) after the last step, not before.
    assert await mark_dormant(sessions, cadence, now=NOW + 19 * S) == 0
    assert await mark_dormant(sessions, cadence, now=NOW + 20 * S) == 1
    assert await stage_of(sessions, lead_id) == "dormant"
    # Reactivation once dormant for the (compressed) 60 days.
    assert await start_reactivations(sessions, cadence, now=NOW + 79 * S) == 0
    assert await start_reactivations(sessions, cadence, now=NOW + 80 * S) == 1
    assert (await rows(sessions, lead_id))[-1][:1] == ("reactivate",)


async def test_a_reply_skips_the_rest_of_the_cycle(sessions: Sessions, tmp_path: Path) -> None:
    cadence = quiet(tmp_path)
    sweeper, channel = make_sweeper(sessions, cadence)
    lead_id = await chat_lead(sessions)
    await start(sessions, cadence, lead_id)
    await sweeper.sweep(NOW + 2 * S)  # the nudge
    async with sessions.begin() as session:  # they answer (the turn would also cancel)
        await session.execute(
            update(Lead).where(Lead.id == lead_id).values(last_inbound_at=NOW + 3 * S)
        )
    for second in range(3, 12):
        await sweeper.sweep(NOW + second * S)
    assert len(channel.sent) == 1
    # The first step due finds the reply and ends the cycle: the rest are cancelled.
    assert [s for step, _, s in await rows(sessions, lead_id) if step != "nudge"] == [
        "skipped",
        "cancelled",
        "cancelled",
        "cancelled",
    ]


async def test_repeat_sequences_start_a_new_cycle_each_time(
    sessions: Sessions, tmp_path: Path
) -> None:
    cadence = quiet(tmp_path)
    lead_id = await chat_lead(sessions)
    await start(sessions, cadence, lead_id)
    await start(sessions, cadence, lead_id, at=NOW + S)
    assert sorted({cycle for _, cycle, _ in await rows(sessions, lead_id)}) == [0, 1]
    # Not repeatable: starting twice inserts nothing new.
    await start(sessions, cadence, lead_id, sequence="reactivation")
    await start(sessions, cadence, lead_id, sequence="reactivation")
    assert [c for step, c, _ in await rows(sessions, lead_id) if step == "reactivate"] == [0]


@pytest.mark.parametrize(
    ("start_at", "expected"),
    [
        # Tuesday 23:00 in New York: quiet hours move the 4 h nudge to 08:00 (9 h later).
        (datetime(2026, 3, 4, 4, 0, tzinfo=UTC), datetime(2026, 3, 4, 13, 0, tzinfo=UTC)),
        # Saturday 11:00: business days would move it to Monday, past the window; the nudge
        # goes at its plain offset instead.
        (datetime(2026, 3, 7, 16, 0, tzinfo=UTC), datetime(2026, 3, 7, 20, 0, tzinfo=UTC)),
    ],
)
def test_the_default_nudge_stays_inside_the_24_hour_window(
    start_at: datetime, expected: datetime
) -> None:
    cadence = load_cadence(DEFAULT)
    nudge = cadence.sequence("whatsapp_quiet").steps[0]
    due = due_at(nudge, start_at, cadence, "America/New_York", None)
    assert due == expected and due - start_at < timedelta(hours=24)


def test_a_deadline_before_the_offset_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CadenceError, match="deadline cannot come before the offset"):
        load_cadence(write_cadence(tmp_path, QUIET.replace("deadline: 5s", "deadline: 1s")))


# -- the next-step invariant -----------------------------------------------------------------


async def test_a_stalled_conversation_gets_the_quiet_cadence(
    sessions: Sessions, tmp_path: Path
) -> None:
    cadence = quiet(tmp_path)
    lead_id = await chat_lead(sessions)  # answered before the quiet cadence existed
    assert (await check_next_steps(sessions, cadence, now=NOW + 2 * S, config=CHECK)).found == 0
    report = await check_next_steps(sessions, cadence, now=NOW + 10 * S, config=CHECK)
    assert dict(report.counts) == {("contacted", "scheduled"): 1} and report.lead_ids == [lead_id]
    assert {(step, c, s) for step, c, s in await rows(sessions, lead_id)} == {
        (step, 0, "pending") for step in ("nudge", "day1", "day3", "day7", "day14")
    }
    assert (await check_next_steps(sessions, cadence, now=NOW + 11 * S, config=CHECK)).found == 0


async def test_a_cadence_whose_last_touch_never_went_out_still_ends_dormant(
    sessions: Sessions, tmp_path: Path
) -> None:
    cadence = quiet(tmp_path)
    lead_id = await chat_lead(sessions)
    await start(sessions, cadence, lead_id)
    async with sessions.begin() as session:  # e.g. no template outside the window
        await session.execute(update(Touch).values(status="failed", note="window closed"))
    assert await mark_dormant(sessions, cadence, now=NOW + 30 * S) == 0  # counts sent only
    # The last step was due at 10 s; dormancy counts down its after_last (10 s) first.
    assert (await check_next_steps(sessions, cadence, now=NOW + 19 * S, config=CHECK)).found == 0
    report = await check_next_steps(sessions, cadence, now=NOW + 20 * S, config=CHECK)
    assert dict(report.counts) == {("contacted", "dormant"): 1}
    assert await stage_of(sessions, lead_id) == "dormant"


async def test_a_reply_after_the_cadence_started_gets_a_new_cycle(
    sessions: Sessions, tmp_path: Path
) -> None:
    cadence = quiet(tmp_path)
    lead_id = await chat_lead(sessions)
    await start(sessions, cadence, lead_id)
    async with sessions.begin() as session:  # they wrote; the cadence was cancelled
        await session.execute(update(Touch).values(status="cancelled", note="prospect replied"))
        await session.execute(
            update(Lead).where(Lead.id == lead_id).values(last_inbound_at=NOW + 3 * S)
        )
    # Not answered yet (an email reply waits for the rep): counted for a person, not nudged.
    report = await check_next_steps(sessions, cadence, now=NOW + 9 * S, config=CHECK)
    assert dict(report.counts) == {("contacted", "unrepaired"): 1}
    assert {s for _, _, s in await rows(sessions, lead_id)} == {"cancelled"}
    async with sessions.begin() as session:  # answered; then nothing was scheduled
        await session.execute(
            update(Lead).where(Lead.id == lead_id).values(last_outbound_at=NOW + 4 * S)
        )
    report = await check_next_steps(sessions, cadence, now=NOW + 10 * S, config=CHECK)
    assert dict(report.counts) == {("contacted", "scheduled"): 1}
    assert {c for _, c, s in await rows(sessions, lead_id) if s == "pending"} == {1}


async def test_new_leads_and_leads_with_a_next_step(sessions: Sessions, tmp_path: Path) -> None:
    cadence = quiet(tmp_path)
    cold = await make_lead(
        sessions,
        1,
        stage="new",
        qualification={"first_touch": {"action": "none", "sequence": None}},
    )
    unscored = await make_lead(sessions, 2, stage="new")
    decided = await make_lead(
        sessions,
        3,
        stage="new",
        qualification={"first_touch": {"action": "auto_reply", "sequence": "whatsapp_quiet"}},
    )
    # Contacted leads that have a next step of another kind:
    await chat_lead(sessions, 4, opted_out_at=NOW)
    await chat_lead(sessions, 5, bot_paused=True)
    await chat_lead(sessions, 6, booked_at=NOW)
    await chat_lead(sessions, 7, last_inbound_at=NOW + 8 * S)  # a turn may be under way
    waiting = await chat_lead(sessions, 8)
    async with sessions.begin() as session:  # their message is in the inbox, not handled
        await session.execute(
            insert(InboxItem).values(
                channel="whatsapp",
                external_id="wamid.W",
                sender="+14155550008",
                payload={},
                received_at=NOW,
            )
        )
    report = await check_next_steps(sessions, cadence, now=NOW + 10 * S, config=CHECK)
    assert dict(report.counts) == {("new", "unrepaired"): 1, ("new", "scheduled"): 1}
    assert report.lead_ids == [unscored, decided]
    assert await rows(sessions, cold) == [] and await rows(sessions, waiting) == []


async def test_every_lead_is_checked_however_many_there_are(
    sessions: Sessions, tmp_path: Path
) -> None:
    cadence = quiet(tmp_path)
    leads = [await chat_lead(sessions, n) for n in range(1, 8)]
    config = NextStepConfig(grace=5 * S, page=3)
    report = await check_next_steps(sessions, cadence, now=NOW + 10 * S, config=config)
    assert report.lead_ids == leads and dict(report.counts) == {("contacted", "scheduled"): 7}
