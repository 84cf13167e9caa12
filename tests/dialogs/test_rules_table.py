"""The rules interpreter against tables of realistic prospect replies (tests/data/).

Accuracy (a row counts only if every slot, and the intent/FAQ when given, is exactly right)
must stay at or above each table's floor; the figure, per language, and any failing rows are
printed. Opt-outs and requests for a person are not allowed to miss at all.

The tables, and what the rules have seen of them:

- ``replies.yaml``, ``replies_languages.yaml``: written to tune the rules on.
- ``replies_heldout.yaml`` (issue 16, 131 rows): written after that tuning and frozen before
  the rules saw it; it met 87.0% then. It has been tuned on since (the next stop's misses),
  so it now counts as a tuned table.
- ``replies_blind.yaml`` (issue 16, 233 rows): the held-out table now. Written by someone who
  had not read the rules or the other tables, frozen before the rules first saw it (83.7%
  then), and never tuned on; only its figure is read. Its floor sits below the figure it met
  after this stop's tuning (see :data:`TABLES`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialogs.interpretation import Intent, Interpretation, SlotValue
from dialogs.interpreters.rules import RulesInterpreter
from dialogs.parsing.normalize import normalize
from dialogs.script import Script
from dialogs.session import Session

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
TABLE = DATA / "replies.yaml"
BLIND_FLOOR = 0.85  # the held-out table: below what it met (bench/README.md has the figures)
# Each table and the accuracy it must keep.
TABLES = {
    "replies.yaml": 0.95,
    "replies_languages.yaml": 0.95,
    "replies_heldout.yaml": 0.95,
    "replies_blind.yaml": BLIND_FLOOR,
}
SCRIPTS = {"en": "b2b_default", "es": "b2b_es", "pt": "b2b_pt"}
NOW = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)  # a Wednesday


@cache
def load_script(key: str) -> Script:
    path = ROOT / "dialogs" / "scripts" / f"{SCRIPTS[key]}.yaml"
    return Script.model_validate(yaml.safe_load(path.read_text("utf-8")))


def rows(name: str = "replies.yaml") -> list[dict[str, Any]]:
    data = yaml.safe_load((DATA / name).read_text("utf-8"))
    table: list[dict[str, Any]] = data["rows"]
    return table


def interpret(row: Mapping[str, Any], interpreter: RulesInterpreter) -> Interpretation:
    script = load_script(row["script"])
    session = Session.new(script, NOW).model_copy(update={"open_slot": row["open"]})
    return interpreter.interpret_now(script, session, row["text"], NOW)


def _same(expected: Any, got: SlotValue, text: str) -> bool:
    if expected == "?":
        return got.unknown and got.value is None
    if got.unknown:
        return False
    if expected == "*":
        return got.value == normalize(text)
    if isinstance(expected, int | float) and isinstance(got.value, int | float):
        return math.isclose(expected, got.value, rel_tol=1e-9)
    return str(expected) == got.value


def problem(row: Mapping[str, Any], result: Interpretation) -> str | None:
    """Why ``result`` is wrong for ``row``, or None when it is right."""
    expected: Mapping[str, Any] = row["expect"] or {}
    issues = []
    for slot, value in expected.items():
        got = result.slots.get(slot)
        if got is None:
            issues.append(f"{slot}: missing (want {value!r})")
        elif not _same(value, got, row["text"]):
            shown = "?" if got.unknown else got.value
            issues.append(f"{slot}: got {shown!r}, want {value!r}")
    extra = sorted(set(result.slots) - set(expected))
    if extra:
        issues.append("unexpected " + ", ".join(f"{s}={result.slots[s].value!r}" for s in extra))
    if "intent" in row and result.intent.value != row["intent"]:
        issues.append(f"intent {result.intent.value}, want {row['intent']}")
    if "faq" in row and result.faq_id != row["faq"]:
        issues.append(f"faq {result.faq_id}, want {row['faq']}")
    return "; ".join(issues) or None


@cache
def _results(name: str) -> list[tuple[dict[str, Any], Interpretation]]:
    interpreter = RulesInterpreter()
    return [(row, interpret(row, interpreter)) for row in rows(name)]


@pytest.fixture(scope="module")
def results() -> list[tuple[dict[str, Any], Interpretation]]:
    return [pair for name in TABLES for pair in _results(name)]


def test_table_is_big_and_covers_both_scripts() -> None:
    table = rows()
    assert len(table) >= 150
    assert {r["script"] for r in table} == {"en", "es"}
    assert sum(r["script"] == "es" for r in table) >= 40
    assert sum(len(r["expect"] or {}) > 1 for r in table) >= 15  # multi-slot replies


def test_issue_16_tables_cover_three_languages() -> None:
    """At least 300 replies written for issue 16, in English, Spanish and Portuguese, with
    several facts in one message; the blind held-out table alone at least 200."""
    tables = [rows(n) for n in ("replies_languages.yaml", "replies_heldout.yaml")]
    blind = rows("replies_blind.yaml")
    assert len(blind) >= 200
    assert sum(map(len, tables)) + len(blind) >= 300
    for table in (*tables, blind):
        assert {r["script"] for r in table} == set(SCRIPTS)
        assert sum(len(r["expect"] or {}) > 1 for r in table) >= 8
    for lang in SCRIPTS:
        assert sum(r["script"] == lang for r in blind) >= 60


@pytest.mark.parametrize("name", list(TABLES))
def test_accuracy(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    results = _results(name)
    failures = [
        f"  [{row['script']}/{row['open']}] {row['text']!r}: {why}"
        for row, result in results
        if (why := problem(row, result)) is not None
    ]
    accuracy = 1 - len(failures) / len(results)
    per_language = []
    for lang in SCRIPTS:
        mine = [(r, res) for r, res in results if r["script"] == lang]
        if mine:
            good = sum(problem(r, res) is None for r, res in mine)
            per_language.append(f"{lang} {good / len(mine):.1%} ({good}/{len(mine)})")
    with capsys.disabled():
        print(  # noqa: T201 - the figure is the point of this test
            f"\nrules interpreter accuracy on {name}: {accuracy:.1%} "
            f"({len(results) - len(failures)}/{len(results)} replies; {', '.join(per_language)})"
        )
        for line in failures:
            print(line)  # noqa: T201
    assert accuracy >= TABLES[name], "\n".join(failures)


def test_opt_outs_and_human_requests_never_miss(
    results: list[tuple[dict[str, Any], Interpretation]],
) -> None:
    critical = [(r, res) for r, res in results if r.get("intent") in ("stop", "human")]
    assert len(critical) >= 10
    missed = [r["text"] for r, res in critical if res.intent.value != r["intent"]]
    assert missed == []


def test_problem_detects_a_wrong_answer() -> None:
    """The checker itself can fail: a wrong value, a missing and an extra slot are caught."""
    row = {"text": "x", "expect": {"budget": 5000}, "intent": "answer"}
    wrong = Interpretation(
        Intent.ANSWER,
        {"budget": SlotValue(500, "500"), "timeline": SlotValue("asap", "now")},
    )
    why = problem(row, wrong)
    assert why is not None and "budget: got 500" in why and "unexpected timeline" in why
