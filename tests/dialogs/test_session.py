"""Sessions: JSON round trip, version guard, bounded history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from dialogs.loader import load_script
from dialogs.session import (
    HISTORY_LIMIT,
    TURN_TEXT_LIMIT,
    OffScriptQuestion,
    Session,
    SessionVersionError,
    SlotRecord,
    Turn,
)

SCRIPT = load_script(Path(__file__).resolve().parents[2] / "dialogs/scripts/b2b_default.yaml")
T0 = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)


def _busy_session() -> Session:
    s = Session.new(SCRIPT, T0, name="Ana")
    s = s.model_copy(
        update={
            "slots": {
                "need": SlotRecord(value="build", evidence="a new website"),
                "company_size": SlotRecord(value=None, evidence="idk", unknown=True),
                "budget": SlotRecord(value=50000, evidence="50k"),
                "ratio": SlotRecord(value=1.5, evidence="1.5"),
            },
            "open_slot": "timeline",
            "reasks": {"company_size": 2},
            "off_script": (OffScriptQuestion(text="price?", faq_id="price", at=T0),),
            "off_script_questions": 1,
            "qualification": {"decision": "qualified", "tier": "hot", "reasons": ["a"]},
        }
    )
    return s.with_turn("prospect", "hi", T0, "injection_suspected").with_turn("bot", "Hello", T0)


def test_new_session() -> None:
    s = Session.new(SCRIPT, T0)
    assert (s.script_id, s.script_version) == ("b2b_default", SCRIPT.version)
    assert s.status == "active" and s.open_slot is None and not s.slots
    assert s.started_at == s.updated_at == T0
    assert not s.filled("need") and not s.finished


def test_json_round_trip_is_exact() -> None:
    s = _busy_session()
    dumped = s.model_dump(mode="json")
    text = json.dumps(dumped)  # must be plain JSON
    back = Session.model_validate(json.loads(text))
    assert back == s
    assert isinstance(back.slots["budget"].value, int)
    assert isinstance(back.slots["ratio"].value, float)
    assert back.history[0].flags == ("injection_suspected",)
    assert back.started_at.tzinfo is not None


def test_unknown_filled_slot_counts_as_filled() -> None:
    s = _busy_session()
    assert s.filled("company_size") and s.filled("need") and not s.filled("timeline")


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_unknown_schema_version_is_refused_loudly(version: object) -> None:
    data = _busy_session().model_dump(mode="json")
    data["schema_version"] = version
    with pytest.raises(SessionVersionError, match="unsupported session schema_version"):
        Session.model_validate(data)


def test_naive_datetimes_are_refused() -> None:
    data = Session.new(SCRIPT, T0).model_dump(mode="json")
    data["started_at"] = "2025-03-03T09:30:00"
    with pytest.raises(ValidationError):
        Session.model_validate(data)


def test_unknown_fields_are_refused() -> None:
    data = Session.new(SCRIPT, T0).model_dump(mode="json")
    data["surprise"] = 1
    with pytest.raises(ValidationError):
        Session.model_validate(data)


def test_history_is_bounded_and_turn_text_capped() -> None:
    s = Session.new(SCRIPT, T0)
    for i in range(HISTORY_LIMIT + 5):
        s = s.with_turn("prospect", f"m{i}" + "x" * 1000, T0 + timedelta(seconds=i))
    assert len(s.history) == HISTORY_LIMIT
    assert s.history[0].text.startswith(f"m{5}")
    assert all(len(t.text) == TURN_TEXT_LIMIT for t in s.history)


def test_sessions_are_immutable() -> None:
    s = Session.new(SCRIPT, T0)
    with pytest.raises(ValidationError):
        s.status = "qualified"  # type: ignore[misc]


def test_the_engines_unvalidated_builds_equal_pydantics() -> None:
    """``updated`` and ``Turn.of`` skip pydantic's machinery for speed: what they build must be
    the same model (equal, same fields set, same JSON, still frozen) as pydantic's own."""
    base = _busy_session()
    changes = {"status": "qualified", "turns": 3, "open_slot": None, "updated_at": T0}
    fast, slow = base.updated(changes), base.model_copy(update=changes)
    assert fast == slow and fast.model_fields_set == slow.model_fields_set
    assert fast.model_dump(mode="json") == slow.model_dump(mode="json")
    assert base.status == "active"  # the original is untouched
    turn = Turn.of("bot", "x" * (TURN_TEXT_LIMIT + 9), T0, ("choice",))
    built = Turn(role="bot", text="x" * TURN_TEXT_LIMIT, at=T0, flags=("choice",))
    assert turn == built and turn.model_fields_set == built.model_fields_set
    assert Session.model_validate(fast.model_dump(mode="json")) == fast
    with pytest.raises(ValidationError):
        fast.status = "active"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        turn.text = "y"  # type: ignore[misc]
