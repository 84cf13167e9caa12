"""The state of one prospect's conversation with one script.

A :class:`Session` is immutable and JSON round-trippable (``model_dump(mode="json")`` /
``model_validate``); the bot stores it per lead and hands it back to the engine on the next
event. It carries the script id and version it was started with and its own
``schema_version``; an unknown schema version is refused loudly rather than misread.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from dialogs.errors import LeadbotError

if TYPE_CHECKING:
    from dialogs.script import Script

SCHEMA_VERSION = 1
HISTORY_LIMIT = 10  # turns kept for context (LLM prompt, rep summary); older ones drop off
TURN_TEXT_LIMIT = 500  # chars kept per turn: bounds the stored row whatever the prospect sends

Status = Literal["active", "qualified", "disqualified", "handoff", "opted_out"]
FINISHED: frozenset[str] = frozenset({"qualified", "disqualified", "handoff", "opted_out"})


class SessionVersionError(LeadbotError, RuntimeError):
    """A stored session has a schema version this code does not know.

    Not a ``ValueError`` on purpose: pydantic lets it through unwrapped, so it cannot be
    mistaken for ordinary bad input and silently replaced by a fresh session.
    """

    def __init__(self, found: object) -> None:
        super().__init__(
            f"unsupported session schema_version {found!r} (this code reads {SCHEMA_VERSION})"
        )
        self.found = found


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_M = TypeVar("_M", bound=_Frozen)


def _unvalidated(cls: type[_M], fields: dict[str, Any], fields_set: AbstractSet[str]) -> _M:
    """An instance of ``cls`` holding ``fields`` as given, the way ``model_copy`` makes one
    (no validation; these models have no extra fields and no private attributes): for the
    engine's own values on its hot path, where validating costs more than the step's work."""
    instance = object.__new__(cls)
    object.__setattr__(instance, "__dict__", fields)
    object.__setattr__(instance, "__pydantic_fields_set__", set(fields_set))
    object.__setattr__(instance, "__pydantic_extra__", None)
    object.__setattr__(instance, "__pydantic_private__", None)
    return instance


class SlotRecord(_Frozen):
    """A filled slot: its normalized value, the words it came from, and whether it is an
    "I don't know" answer (filled, but with no value)."""

    value: str | int | float | None
    evidence: str = ""
    unknown: bool = False
    # False when the bot gave up on an answer it could not read: not the prospect's "I
    # don't know", so it is scored as missing (it never counts against the lead).
    understood: bool = True


class Turn(_Frozen):
    """One message in the conversation, as kept in the bounded history."""

    role: Literal["prospect", "bot"]
    text: str
    at: AwareDatetime
    flags: tuple[str, ...] = ()  # e.g. "injection_suspected", "media:image", "choice"

    @classmethod
    def of(
        cls, role: Literal["prospect", "bot"], text: str, at: datetime, flags: tuple[str, ...]
    ) -> Turn:
        """A turn built without validation, for the engine (two a step): ``at`` is its own
        aware ``now`` and the text is cut to :data:`TURN_TEXT_LIMIT` here."""
        fields = {"role": role, "text": text[:TURN_TEXT_LIMIT], "at": at, "flags": flags}
        return _unvalidated(cls, fields, _TURN_FIELDS)


_TURN_FIELDS = frozenset({"role", "text", "at", "flags"})


class OffScriptQuestion(_Frozen):
    """A question the prospect asked us, and the FAQ entry that answered it (if any)."""

    text: str
    faq_id: str | None
    at: AwareDatetime


class Session(_Frozen):
    """One conversation's state. Build with :meth:`new`; change with ``model_copy``."""

    schema_version: int = SCHEMA_VERSION
    script_id: str
    script_version: str
    status: Status = "active"
    slots: dict[str, SlotRecord] = {}
    open_slot: str | None = None  # the question currently asked
    reasks: dict[str, int] = {}
    # How many times each slot's question was put to the prospect (asked, re-asked, nudged).
    asked: dict[str, int] = {}
    off_script_questions: int = 0
    unanswered_questions: int = 0  # off-script questions no FAQ entry answered
    off_script: tuple[OffScriptQuestion, ...] = ()  # the last HISTORY_LIMIT of them
    history: tuple[Turn, ...] = ()
    name: str | None = None  # the prospect's profile name, for the {name} placeholder
    qualification: dict[str, Any] | None = None  # the scorer's decision, as JSON
    started_at: AwareDatetime
    updated_at: AwareDatetime
    turns: int = Field(default=0, ge=0)  # prospect events handled
    nudged: bool = False  # a "still there?" went out since the prospect last wrote
    follow_ups: str | None = None  # the follow-up sequence scheduled since they went quiet
    # The canned replies given since the decision ("finished", "forwarded", "faq:<id>"):
    # each is said once, so a prospect who keeps writing never gets the same line twice.
    said_after: tuple[str, ...] = ()
    # The A/B experiment and variant this conversation was assigned at its start
    # (dialogs.experiments); None when its script ran none. Never changes afterwards.
    experiment: str | None = None
    variant: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_version(cls, data: Any) -> Any:
        if isinstance(data, dict):
            found = data.get("schema_version", SCHEMA_VERSION)
            if found != SCHEMA_VERSION:
                raise SessionVersionError(found)
        return data

    @classmethod
    def new(cls, script: Script, now: datetime, *, name: str | None = None) -> Session:
        """A fresh session for ``script`` started at ``now`` (UTC-aware)."""
        return cls(
            script_id=script.id,
            script_version=script.version,
            name=name,
            started_at=now,
            updated_at=now,
        )

    def filled(self, slot: str) -> bool:
        """Whether ``slot`` has an answer (an "I don't know" counts as one)."""
        return slot in self.slots

    @property
    def finished(self) -> bool:
        """Whether the conversation has reached an end state."""
        return self.status in FINISHED

    def updated(self, changes: dict[str, Any]) -> Session:
        """This session with ``changes`` applied: ``model_copy(update=changes)`` (equally
        unvalidated; the engine passes only values of the fields' types), in a third of its
        time. The engine builds one per step, so this is on the hot path
        (``bench/bench_step.py``)."""
        state = dict(self.__dict__)
        state.update(changes)
        return _unvalidated(Session, state, self.__pydantic_fields_set__ | changes.keys())

    def with_turn(
        self, role: Literal["prospect", "bot"], text: str, at: datetime, *flags: str
    ) -> Session:
        """This session with one more history turn, keeping only the last HISTORY_LIMIT."""
        turn = Turn(role=role, text=text[:TURN_TEXT_LIMIT], at=at, flags=flags)
        return self.model_copy(update={"history": (*self.history, turn)[-HISTORY_LIMIT:]})
