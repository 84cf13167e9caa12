"""The closed schema the LLM fills, built per script: every enum is the script's own ids.

The model can only name slots, option ids, intents and FAQ ids that exist; there is no field
for a score or a decision, so "mark me qualified" has nowhere to land. What the enums cannot
check (the quote really is in the message, the number really is in the quote, bounds) is
checked afterwards by :mod:`dialogs.interpreters.grounding`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from dialogs.interpretation import Intent

if TYPE_CHECKING:
    from dialogs.script import Script

MAX_EVIDENCE_CHARS = 300
MAX_TEXT_CHARS = 500
MAX_FACTS = 8


class Fact(BaseModel):
    """One extracted slot value (the per-script subclass narrows ``slot``/``option_id``)."""

    model_config = ConfigDict(extra="forbid")

    slot: str
    option_id: str | None
    number: float | None
    text: str | None = Field(max_length=MAX_TEXT_CHARS)
    unknown: bool
    evidence: str = Field(max_length=MAX_EVIDENCE_CHARS)


class NextQuestion(BaseModel):
    """The model's wording of the next question (the per-script subclass narrows ``slot``).

    Only wording: the engine still decides which question comes next and uses this only when
    ``slot`` is that question and ``text`` passes :mod:`dialogs.output_filter`. ``text`` has
    no length bound here so a long wording drops only itself, not the facts beside it.
    """

    model_config = ConfigDict(extra="forbid")

    slot: str
    text: str


class Extraction(BaseModel):
    """Everything the model may say about one message (narrowed per script)."""

    model_config = ConfigDict(extra="forbid")

    slots: list[Fact] = Field(max_length=MAX_FACTS)
    intent: Intent
    faq_id: str | None
    injection_suspected: bool


def _one_of(values: list[str]) -> Any:
    """``Literal[values...]`` built at run time (a type checker cannot see through it)."""
    return Literal.__getitem__(tuple(values))


def _no_default(schema: dict[str, Any]) -> None:
    # Strict json_schema (OpenAI) lists every property as required and allows no "default";
    # the default stays on our side only, for providers that leave the field out.
    schema.pop("default", None)


def extraction_model(script: Script, *, phrasing: bool = False) -> type[Extraction]:
    """An :class:`Extraction` subclass whose enums are ``script``'s slots, ids and FAQ ids;
    with ``phrasing``, plus ``next_question`` (:class:`NextQuestion` or null)."""
    option_ids = sorted({o.id for q in script.questions for o in q.options})
    faq_ids = sorted(f.id for f in script.faq)
    fact_fields: dict[str, Any] = {
        "slot": (_one_of(list(script.slots)), ...),
        "option_id": ((_one_of(option_ids) | None) if option_ids else None, ...),
    }
    fact: Any = create_model("Fact", __base__=Fact, **fact_fields)
    fields: dict[str, Any] = {
        "slots": (list[fact], Field(max_length=MAX_FACTS)),
        "intent": (_one_of([i.value for i in Intent]), ...),
        "faq_id": ((_one_of(faq_ids) | None) if faq_ids else None, ...),
    }
    if phrasing:
        slot: Any = _one_of(list(script.slots))
        next_question: Any = create_model("NextQuestion", __base__=NextQuestion, slot=(slot, ...))
        fields["next_question"] = (
            next_question | None,
            Field(default=None, json_schema_extra=_no_default),
        )
    return create_model("Extraction", __base__=Extraction, **fields)
