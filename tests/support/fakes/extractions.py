"""Builders for what a model returns to the LLM interpreter (the Extraction JSON)."""

from __future__ import annotations

from typing import Any


def fact(
    slot: str,
    evidence: str,
    *,
    option_id: str | None = None,
    number: float | None = None,
    text: str | None = None,
    unknown: bool = False,
) -> dict[str, Any]:
    """One slot fact, every field present (strict json_schema requires them all)."""
    return {
        "slot": slot,
        "option_id": option_id,
        "number": number,
        "text": text,
        "unknown": unknown,
        "evidence": evidence,
    }


def extraction(
    *facts: dict[str, Any],
    intent: str = "answer",
    faq_id: str | None = None,
    injection_suspected: bool = False,
) -> dict[str, Any]:
    """A complete extraction object."""
    return {
        "slots": list(facts),
        "intent": intent,
        "faq_id": faq_id,
        "injection_suspected": injection_suspected,
    }
