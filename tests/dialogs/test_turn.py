"""The turn policy (:func:`dialogs.turn.take_turn`): the events of one turn, one reply."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from dialogs.actions import (
    MESSAGE_ACTIONS,
    NotifyRep,
    Qualify,
    ScheduleFollowUps,
    SendCtaUrl,
    SendText,
    SetSlot,
    SetStage,
)
from dialogs.engine import step
from dialogs.events import Event, Started, TextReceived, UnsupportedMedia
from dialogs.icp import load_icp
from dialogs.interpretation import Intent, Interpretation, SlotScalar, SlotValue
from dialogs.loader import load_script
from dialogs.script import Script
from dialogs.session import Session
from dialogs.turn import TurnResult, take_turn

SCRIPT = load_script(Path(__file__).resolve().parents[2] / "dialogs/scripts/b2b_default.yaml")
ICP = load_icp()
T0 = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)


def ans(version: str | None = None, **slots: SlotScalar) -> Interpretation:
    values = {k: SlotValue(v, evidence=str(v)) for k, v in slots.items()}
    return Interpretation(Intent.ANSWER, values, prompt_version=version)


class Scripted:
    """An interpreter that answers from a table, and remembers what it was asked."""

    def __init__(self, table: Mapping[str, Interpretation]) -> None:
        self.table = table
        self.calls: list[tuple[str, Session]] = []

    async def interpret(
        self, script: Script, session: Session, text: str, now: datetime
    ) -> Interpretation:
        self.calls.append((text, session))
        return self.table.get(text, Interpretation(Intent.UNKNOWN))


def started() -> Session:
    return step(SCRIPT, Session.new(SCRIPT, T0), Started(), T0, icp=ICP).session


def answered(**slots: SlotScalar) -> Session:
    return step(SCRIPT, started(), TextReceived("...", ans(**slots)), T0, icp=ICP).session


async def turn(session: Session, events: list[Event], interpreter: Scripted) -> TurnResult:
    return await take_turn(SCRIPT, session, events, interpreter, T0, icp=ICP)


def messages(result: TurnResult) -> list[object]:
    return [a for a in result.actions if isinstance(a, MESSAGE_ACTIONS)]


async def test_several_events_in_one_turn_give_one_reply_the_latest() -> None:
    session = answered(need="build")
    said = Scripted({"we are 200": ans(company_size="51-200"), "60k": ans(budget=60000)})
    result = await turn(session, [TextReceived("we are 200"), TextReceived("60k")], said)
    # Both messages were stepped: each filled its slot ...
    assert {"company_size", "budget"} <= set(result.session.slots)
    assert [a.slot for a in result.actions if isinstance(a, SetSlot)] == [
        "company_size",
        "budget",
    ]
    # ... but only the last step's message goes out, last of all the actions.
    (reply,) = messages(result)
    assert result.reply is reply and result.actions[-1] is reply
    alone = step(
        SCRIPT,
        answered(need="build", company_size="51-200"),
        TextReceived("60k", ans(budget=60000)),
        T0,
        icp=ICP,
    )
    (expected,) = [a for a in alone.actions if isinstance(a, MESSAGE_ACTIONS)]
    assert reply == expected


async def test_an_earlier_step_that_closes_the_conversation_wins_over_a_later_message() -> None:
    session = answered(need="build", company_size="51-200", budget=60000)
    said = Scripted({"asap": ans(timeline="asap"), "thanks!": Interpretation(Intent.GREETING)})
    result = await turn(session, [TextReceived("asap"), TextReceived("thanks!")], said)
    assert result.session.status == "qualified"
    (reply,) = messages(result)
    closing = step(SCRIPT, session, TextReceived("asap", ans(timeline="asap")), T0, icp=ICP)
    # The closing step's booking message, not the later "we have everything we need".
    assert isinstance(reply, SendCtaUrl) and reply == closing.actions[-1]
    assert "everything we need" not in reply.body
    assert result.reply is reply
    # The closing step's other actions are all kept, in order, before the reply.
    kinds = [type(a) for a in result.actions]
    assert kinds == [SetSlot, Qualify, SetStage, NotifyRep, SendCtaUrl]
    # A finished conversation schedules no quiet follow-ups.
    assert not any(isinstance(a, ScheduleFollowUps) for a in result.actions)


async def test_the_later_message_counts_when_nothing_closed_before_it() -> None:
    session = answered(need="build")
    said = Scripted({"we are 200": ans(company_size="51-200")})
    first = await turn(session, [TextReceived("we are 200")], said)
    with_media = await turn(session, [TextReceived("we are 200"), UnsupportedMedia("image")], said)
    (reply,) = messages(with_media)
    assert isinstance(reply, SendText) and "only read text" in reply.text
    assert reply != first.reply


async def test_an_open_question_schedules_the_quiet_sequence_before_the_reply() -> None:
    assert SCRIPT.quiet_sequence
    said = Scripted({"we are 200": ans(company_size="51-200")})
    result = await turn(answered(need="build"), [TextReceived("we are 200")], said)
    assert result.actions[-2:] == (ScheduleFollowUps(SCRIPT.quiet_sequence), result.reply)


async def test_text_is_interpreted_in_the_session_the_earlier_events_left() -> None:
    said = Scripted({"build": ans(need="build"), "200": ans(company_size="51-200")})
    await turn(started(), [TextReceived("build"), TextReceived("200")], said)
    (first, first_session), (second, second_session) = said.calls
    assert (first, second) == ("build", "200")
    assert "need" not in first_session.slots and "need" in second_session.slots


async def test_the_prompt_version_is_carried_and_given_text_not_reinterpreted() -> None:
    said = Scripted({"build": ans("interpret@7", need="build"), "200": ans(company_size="51-200")})
    given = TextReceived("60k", ans(budget=60000))
    result = await turn(started(), [TextReceived("build"), given, TextReceived("200")], said)
    # The later text had no prompt version: the turn keeps the one that interpreted it.
    assert result.prompt_version == "interpret@7"
    assert [text for text, _ in said.calls] == ["build", "200"]  # "60k" came interpreted
    assert result.session.slots["budget"].value == 60000


async def test_a_turn_without_a_message_has_no_reply() -> None:
    result = await turn(answered(need="build"), [UnsupportedMedia("reaction")], Scripted({}))
    assert result.reply is None and not messages(result)
    assert result.actions == (ScheduleFollowUps(SCRIPT.quiet_sequence or ""),)
