"""The moves the engine makes within one step, on an accumulating :class:`StepBuilder`.

The builder holds the evolving (immutable) session and the actions decided so far, and keeps
the one-message-per-turn rule structurally: :meth:`StepBuilder.say` merges a second message
into the first instead of sending two.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from dialogs.actions import (
    CALENDLY_PLACEHOLDER,
    Action,
    CancelFollowUps,
    HandOff,
    Message,
    NotifyRep,
    OptOut,
    Qualify,
    SendCtaUrl,
    SendText,
    SetSlot,
    SetStage,
)
from dialogs.interpretation import Phrasing, SlotValue
from dialogs.render import ask, body_of, join, outcome_message, summary, with_prefix
from dialogs.script import INTERACTIVE_BODY_MAX, AnswerKind, Question, Script
from dialogs.session import (
    HISTORY_LIMIT,
    OffScriptQuestion,
    Session,
    SlotRecord,
    Turn,
)

if TYPE_CHECKING:
    from dialogs.icp import Icp, Qualification

EVIDENCE_LIMIT = 200  # verbatim quotes are for the rep; keep them short
MAX_ASKS = 2  # times one question is put to the prospect at most (asked, re-asked once)


class StepBuilder:
    """One step in progress: the session so far and what to do about it."""

    def __init__(self, script: Script, session: Session, now: datetime, icp: Icp) -> None:
        self.script = script
        self.now = now
        self.icp = icp
        self.prompt_version: str | None = None
        # The LLM's wording of a question (already filtered); used only if it is the one asked.
        self.phrasing: Phrasing | None = None
        # Changes pile up here and become one new Session at the end: copying a pydantic
        # model per change was the engine's biggest cost (bench/bench_step.py).
        self._base = session
        self._changes: dict[str, Any] = {}
        # The hot fields, mirrored as plain attributes: read several times per step.
        self.status: str = session.status
        self.open_slot: str | None = session.open_slot
        self.slots: dict[str, SlotRecord] = session.slots
        self._turns: list[Turn] = []
        self._actions: list[Action] = []
        self._message: Message | None = None
        self._built: Session | None = None  # :attr:`session`, until the next change

    # -- the session so far ------------------------------------------------------------------

    @property
    def session(self) -> Session:
        """The session with every change so far (built when read after a change)."""
        if not self._changes and not self._turns:
            return self._base
        if self._built is None:
            changes = {**self._changes, "updated_at": self.now}
            if self._turns:
                changes["history"] = (*self._base.history, *self._turns)[-HISTORY_LIMIT:]
            self._built = self._base.updated(changes)
        return self._built

    def _get(self, name: str) -> Any:
        return self._changes[name] if name in self._changes else getattr(self._base, name)

    @property
    def fresh(self) -> bool:
        """Nothing asked or answered yet: the next reply is the first."""
        return self.open_slot is None and not self.slots

    def filled(self, slot: str) -> bool:
        """Whether ``slot`` is answered so far."""
        return slot in self.slots

    def update(self, **changes: Any) -> None:
        """Change session fields (the session itself stays immutable)."""
        self._changes.update(changes)
        self._built = None
        if "status" in changes:
            self.status = changes["status"]
        if "open_slot" in changes:
            self.open_slot = changes["open_slot"]
        if "slots" in changes:
            self.slots = changes["slots"]

    def act(self, action: Action) -> None:
        """Queue a non-message action."""
        self._actions.append(action)

    def say(self, message: Message) -> None:
        """Set the turn's one message; a second one absorbs the first as its prefix."""
        if self._message is not None:
            message = with_prefix(message, body_of(self._message))
        self._message = message

    def heard(self, text: str, *flags: str) -> None:
        """Record a prospect event: history, turn count, and a reply cancels quiet follow-ups."""
        if self._get("follow_ups") is not None:
            self.act(CancelFollowUps("prospect replied"))
        self._turns.append(_turn("prospect", text, self.now, flags))
        self._built = None
        self.update(turns=self._get("turns") + 1, nudged=False, follow_ups=None)

    def result(self) -> tuple[Session, tuple[Action, ...]]:
        """The final session and actions; the message, if any, comes last."""
        if self._message is None:
            return self.session, tuple(self._actions)
        self._turns.append(_turn("bot", body_of(self._message), self.now, ()))
        self._built = None
        return self.session, (*self._actions, self._message)

    # -- the conversation --------------------------------------------------------------------

    def begin(self) -> None:
        """First reply to a new prospect: the lead has now been contacted."""
        self.act(SetStage("contacted", "whatsapp: bot started qualifying"))

    def fill(self, slots: Mapping[str, SlotValue], *, explicit: bool = False) -> set[str]:
        """Record every valid answer in ``slots``; return the slots filled.

        A known answer is never replaced by a later message (``explicit`` taps excepted: the
        prospect chose on purpose), and "I don't know" never overwrites a known answer.
        Values outside the question's options or range are dropped, so a confused
        interpreter cannot store junk.
        """
        filled: set[str] = set()
        records = dict(self.slots)
        for name, sv in slots.items():
            question = _question(self.script, name)
            existing = records.get(name)
            if question is None or not _valid(question, sv):
                continue
            if existing is not None and (sv.unknown or (not existing.unknown and not explicit)):
                continue
            option = question.option(str(sv.value)) if question.options else None
            record = SlotRecord(
                value=None if sv.unknown else (option.id if option else sv.value),
                evidence=sv.evidence[:EVIDENCE_LIMIT],
                unknown=sv.unknown,
            )
            records[name] = record
            filled.add(name)
            self.act(SetSlot(name, record.value, record.evidence, record.unknown))
        if filled:
            self.update(slots=records)
        return filled

    def ask_next(self, *, prefix: str | None = None) -> None:
        """Ask the first unanswered question, or finish when every required one is answered.

        A question already put :data:`MAX_ASKS` times without an answer is given up (kept as
        missing, never held against the prospect) instead of being asked a third time."""
        self._give_up_asked_out()
        slots = self.slots
        question = None
        for q in self.script.questions:
            if q.slot not in slots:
                question = question or q
                if q.required:
                    break
        else:  # every required question is answered
            self.finish(prefix=prefix)
            return
        assert question is not None  # the loop broke on an unanswered question
        self.update(open_slot=question.slot)
        self._put(question.slot)
        phrasing = self.phrasing
        worded = phrasing.text if phrasing and phrasing.slot == question.slot else None
        self.say(ask(self.script, question, text=worded, prefix=prefix or ""))

    def missed(self, slot: str, *, evidence: str) -> None:
        """The answer to ``slot`` was not understood: re-ask once, or give it up (missing)."""
        question = self.script.question(slot)
        count = self._get("reasks").get(slot, 0)
        if count < question.max_reasks and self._get("asked").get(slot, 0) < MAX_ASKS:
            self.update(reasks={**self._get("reasks"), slot: count + 1})
            self._put(slot)
            self.say(ask(self.script, question, text=self.script.reask_text(question)))
            return
        self._give_up(slot, evidence)
        self.ask_next()

    def _put(self, slot: str) -> None:
        asked = self._get("asked")
        self.update(asked={**asked, slot: asked.get(slot, 0) + 1})

    def _give_up_asked_out(self) -> None:
        for slot, times in self._get("asked").items():
            if times >= MAX_ASKS and slot not in self.slots:
                self._give_up(slot, "")

    def _give_up(self, slot: str, evidence: str) -> None:
        """Record that the bot could not read an answer to ``slot`` (scored as missing)."""
        if slot in self.slots:
            return  # answered meanwhile: an answer is never replaced by a give-up
        evidence = evidence[:EVIDENCE_LIMIT]
        record = SlotRecord(value=None, evidence=evidence, unknown=True, understood=False)
        self.update(slots={**self.slots, slot: record})
        self.act(SetSlot(slot, None, evidence, True))

    def off_script(self, text: str, faq_id: str | None) -> str | None:
        """Record an off-script question; return what to answer before the open question,
        or None when it was one unanswerable question too many and the chat was handed off."""
        entry = self.script.faq_entry(faq_id)
        asked = OffScriptQuestion(
            text=text[:EVIDENCE_LIMIT], faq_id=entry and entry.id, at=self.now
        )
        self.update(
            off_script_questions=self._get("off_script_questions") + 1,
            off_script=(*self._get("off_script"), asked)[-HISTORY_LIMIT:],
        )
        if entry is not None:
            return entry.answer
        unanswered = self._get("unanswered_questions") + 1
        self.update(unanswered_questions=unanswered)
        if unanswered >= self.script.max_unanswered:
            message = self.script.outcomes["handoff"].message
            self.hand_off(f"{unanswered} questions the bot could not answer", ack=message)
            return None
        self.act(NotifyRep("question", f'Unanswered question: "{asked.text}"\n\n{self._brief()}'))
        return self.script.off_script_fallback

    def opt_out(self, evidence: str) -> None:
        """Stop for good; confirm once unless a person is handling the chat."""
        silent = self.status == "handoff"
        self.act(OptOut(evidence[:EVIDENCE_LIMIT]))
        self.act(CancelFollowUps("opted out"))
        self.update(status="opted_out", open_slot=None)
        if not silent:
            self.say(SendText(self.script.opted_out))

    def hand_off(self, reason: str, *, ack: str) -> None:
        """Pause the bot and bring in a person."""
        self.update(status="handoff", open_slot=None)
        self.act(HandOff(reason))
        self.act(CancelFollowUps("handed off"))
        self.act(NotifyRep("handoff", f"{reason}\n\n{self._brief()}"))
        self.say(SendText(ack))

    def verdict(self) -> Qualification:
        """The scorer's decision on the answers so far."""
        from dialogs.icp import score  # the scorer loads YAML helpers; only needed here

        answers = {
            name: SlotValue(r.value, evidence=r.evidence, unknown=r.unknown)
            for name, r in self.slots.items()
            if r.understood  # an answer the bot could not read is missing, not against them
        }
        return score(
            self.icp,
            answers,
            script_id=self.script.id,
            script_version=self.script.version,
            prompt_version=self.prompt_version,
        )

    def finish(self, *, prefix: str | None = None, q: Qualification | None = None) -> None:
        """Score the answers against the ICP (``q``: already scored) and close with the
        outcome."""
        q = q or self.verdict()
        self.act(Qualify(q))
        self.update(open_slot=None, qualification=q.model_dump(mode="json"), said_after=())
        detail = f"tier {q.tier} (fit {q.fit_score}, intent {q.intent_score})"
        outcome = q.decision
        if outcome == "undecided":
            gaps = ", ".join(q.missing_for_booking or q.missing) or "nothing"
            detail = f"{detail}, could reach {q.ceiling_tier}; not known: {gaps}"
            if self.script.when_undecided == "handoff":
                ack = self.script.outcomes["handoff"].message
                self.hand_off(f"undecided: {detail}", ack=ack)
                return
            outcome = "qualified"
            detail = f"on what is known, {detail}"
        if outcome == "qualified":
            self.act(SetStage("qualified", f"qualified: {detail}"))
        else:
            self.act(SetStage("lost", f"disqualified: {'; '.join(q.disqualifiers or [detail])}"))
        self.update(status=outcome)
        if outcome == "qualified":
            self.act(NotifyRep("qualified", self._brief()))
        message = outcome_message(self.script, self._get("name"), self.script.outcomes[outcome])
        self.say(with_prefix(message, prefix) if prefix else message)

    def said(self, key: str) -> bool:
        """Whether the canned reply ``key`` was given since the decision."""
        return key in self._get("said_after")

    def say_once(self, key: str) -> bool:
        """Whether the canned reply ``key`` was not yet given since the decision (and note
        that it now is)."""
        said = self._get("said_after")
        if key in said:
            return False
        self.update(said_after=(*said, key))
        return True

    def courtesy(self, *, prefix: str | None = None, always: bool = False) -> None:
        """A short reply for a finished conversation (the booking button again if qualified):
        ``prefix`` (an answer) and the closing line, which is said only once unless
        ``always`` (a tap on one of our buttons: they acted, so they get an answer)."""
        status = self.status
        if status not in ("qualified", "disqualified"):
            return
        first = self.say_once("finished")
        line = self.script.finished if first or always else ""
        text = join(prefix, line) if prefix and line else (prefix or line)
        if not text:
            return  # said already: silence beats the same line again
        if status == "qualified":
            outcome = self.script.outcomes["qualified"]
            body = text[:INTERACTIVE_BODY_MAX]
            self.say(SendCtaUrl(body, self.script.cta_title, outcome.url or CALENDLY_PLACEHOLDER))
        else:
            self.say(SendText(text))

    def forward(self, text: str) -> None:
        """Pass what the prospect wrote after the decision to the rep; tell them once."""
        quoted = text[:EVIDENCE_LIMIT]
        self.act(NotifyRep("question", f'Wrote after the decision: "{quoted}"\n\n{self._brief()}'))
        if self.say_once("forwarded"):
            self.say(SendText(self.script.question_forwarded))

    def _brief(self) -> str:
        return summary(self.session, self.script)


def _question(script: Script, slot: str) -> Question | None:
    return next((q for q in script.questions if q.slot == slot), None)


def _valid(question: Question, sv: SlotValue) -> bool:
    if sv.unknown:
        return True
    value = sv.value
    if value is None or isinstance(value, bool):
        return False
    if question.options and question.kind in (AnswerKind.CHOICE, AnswerKind.TIMELINE):
        if question.option(str(value)) is not None:
            return True
        return question.allow_other and isinstance(value, str) and bool(value.strip())
    if question.kind is AnswerKind.NUMBER:
        return (
            isinstance(value, int | float)
            and math.isfinite(value)
            and (question.min is None or value >= question.min)
            and (question.max is None or value <= question.max)
        )
    if question.kind is AnswerKind.EMAIL:
        return isinstance(value, str) and "@" in value
    return isinstance(value, str) and bool(value.strip())


def _turn(
    role: Literal["prospect", "bot"], text: str, at: datetime, flags: tuple[str, ...]
) -> Turn:
    return Turn.of(role, text, at, flags)
