"""ICP loading and the pure scorer."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from dialogs.icp import DEFAULT_ICP_PATH, Icp, IcpError, load_icp, score
from dialogs.interpretation import SlotValue
from dialogs.script import AnswerKind, Script

ROOT = Path(__file__).resolve().parents[2]
IDS = {"script_id": "b2b_default", "script_version": "2025-01"}


@pytest.fixture(scope="module")
def icp() -> Icp:
    return load_icp()


def sv(value: str | int | float | None, *, unknown: bool = False) -> SlotValue:
    return SlotValue(value, "", unknown=unknown)


def test_ideal_lead_is_hot_and_qualified(icp: Icp) -> None:
    q = score(
        icp,
        {
            "company_size": sv("51-200"),
            "budget": sv(60000),
            "timeline": sv("asap"),
            "need": sv("build"),
        },
        prompt_version="p1",
        **IDS,
    )
    assert (q.fit_score, q.intent_score, q.tier, q.decision) == (100, 100, "hot", "qualified")
    assert q.missing == [] and q.disqualifiers == []
    assert q.prompt_version == "p1" and q.icp_version == icp.version
    assert "budget=60000: +35/35 fit" in q.reasons


def test_hard_disqualifier_wins_over_scores(icp: Icp) -> None:
    q = score(
        icp,
        {
            "company_size": sv("201+"),
            "budget": sv(1500),
            "timeline": sv("asap"),
            "need": sv("build"),
        },
        **IDS,
    )
    assert q.decision == "disqualified" and q.disqualifiers == ["budget < 2000"]


def test_unknown_answers_score_neutral_low_and_never_disqualify(icp: Icp) -> None:
    slots = {
        "company_size": sv("11-50"),
        "budget": sv(None, unknown=True),
        "timeline": sv(None, unknown=True),
        "need": sv("marketing"),
    }
    q = score(icp, slots, **IDS)
    assert q.disqualifiers == []
    assert "budget=unknown: +9/35 fit" in q.reasons  # a quarter of the best, not zero
    known = score(icp, {**slots, "budget": sv(0)}, **IDS)
    assert q.fit_score > known.fit_score


def test_missing_slots_are_listed_and_score_zero(icp: Icp) -> None:
    q = score(icp, {"need": sv("build")}, **IDS)
    assert q.missing == ["company_size", "budget", "timeline"]
    # Nothing known speaks against the lead: never turned away for what is missing.
    assert q.fit_score == 0 and q.decision == "undecided" and q.ceiling_tier == "hot"


def test_own_words_answer_earns_other_points(icp: Icp) -> None:
    q = score(icp, {"need": sv("a CRM for our gym")}, **IDS)
    assert "need=a CRM for our gym: +10/20 intent" in q.reasons


def test_json_dump_is_the_contract(icp: Icp) -> None:
    q = score(icp, {}, **IDS)
    data = q.model_dump(mode="json")
    assert set(data) == {
        "fit_score",
        "intent_score",
        "tier",
        "decision",
        "reasons",
        "missing",
        "disqualifiers",
        "ceiling_tier",
        "missing_for_booking",
        "script_id",
        "script_version",
        "prompt_version",
        "icp_version",
    }
    with pytest.raises(ValueError, match="frozen"):
        q.fit_score = 100  # type: ignore[misc]


values = st.one_of(
    st.none(),
    st.text(max_size=10),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
)


@given(
    st.dictionaries(
        st.sampled_from(["company_size", "budget", "timeline", "need", "x"]),
        st.tuples(values, st.booleans()),
        max_size=5,
    )
)
def test_score_is_total_and_bounded(slots: dict[str, tuple[object, bool]]) -> None:
    icp = load_icp()
    q = score(
        icp,
        {k: SlotValue(v, "", unknown=u) for k, (v, u) in slots.items()},  # type: ignore[arg-type]
        **IDS,
    )
    assert 0 <= q.fit_score <= 100 and 0 <= q.intent_score <= 100
    if q.disqualifiers:
        assert q.decision == "disqualified"


@pytest.mark.parametrize("script_file", ["b2b_default.yaml", "b2b_es.yaml"])
def test_default_icp_matches_the_shipped_scripts(icp: Icp, script_file: str) -> None:
    raw = (ROOT / "dialogs" / "scripts" / script_file).read_text("utf-8")
    script = Script.model_validate(yaml.safe_load(raw))
    for slot, rule in icp.slots.items():
        q = script.question(slot)
        if rule.points:
            assert set(rule.points) == {o.id for o in q.options}, slot
        else:
            assert q.kind is AnswerKind.NUMBER, slot


BAD = {
    "missing.yaml": None,
    "list.yaml": "- a\n- b\n",
    "syntax.yaml": "version: [1\n",
    "no_dimension.yaml": "version: x\nslots:\n  a: {dimension: fit, points: {x: 1}}\n"
    "hot: {fit: 1, intent: 1}\nwarm: {fit: 0, intent: 0}\n",
    "bad_rule.yaml": "version: x\nslots:\n  a: {dimension: fit, points: {x: 1}}\n"
    "  b: {dimension: intent, points: {y: 1}}\nhot: {fit: 1, intent: 1}\n"
    "warm: {fit: 0, intent: 0}\ndisqualifiers: [budget << 3]\n",
    "both_tables.yaml": "version: x\nslots:\n  a: {dimension: fit, points: {x: 1}, bands: "
    "[{points: 1}]}\n  b: {dimension: intent, points: {y: 1}}\nhot: {fit: 1, intent: 1}\n"
    "warm: {fit: 0, intent: 0}\n",
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_files_name_the_file_and_reason(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    if BAD[name] is not None:
        path.write_text(BAD[name] or "", "utf-8")
    with pytest.raises(IcpError) as err:
        load_icp(path)
    assert str(path) in str(err.value)
    assert err.value.reason


@pytest.mark.parametrize(
    ("name", "line"),
    [("syntax.yaml", 2), ("list.yaml", 1), ("bad_rule.yaml", 1), ("both_tables.yaml", 3)],
)
def test_bad_files_point_at_the_line(name: str, line: int, tmp_path: Path) -> None:
    """``file:line: reason`` on one line, as the script and cadence loaders report."""
    path = tmp_path / name
    path.write_text(BAD[name] or "", "utf-8")
    with pytest.raises(IcpError) as err:
        load_icp(path)
    assert err.value.line == line
    assert str(err.value).startswith(f"{path}:{line}: ")
    assert "\n" not in str(err.value)


def test_disqualifier_rule_syntax(tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT_ICP_PATH.read_text("utf-8"))
    data["disqualifiers"] = ["company_size in [1-10]", "timeline == later", "budget <= 100"]
    icp = Icp.model_validate(data)
    q = score(icp, {"company_size": sv("1-10"), "timeline": sv("asap"), "budget": sv(100)}, **IDS)
    assert q.disqualifiers == ["company_size in [1-10]", "budget <= 100"]
    assert score(icp, {"budget": sv("lots")}, **IDS).disqualifiers == []  # not comparable


def test_the_ceiling_decides_between_undecided_and_disqualified(icp: Icp) -> None:
    strong_so_far = score(icp, {"company_size": sv("201+")}, **IDS)
    assert strong_so_far.tier == "cold"  # nothing said yet about intent...
    assert strong_so_far.decision == "undecided" and strong_so_far.ceiling_tier == "hot"
    weak = {"company_size": sv("1-10"), "budget": sv(5000), "timeline": sv("later")}
    outside = score(icp, weak, **IDS)
    assert outside.decision == "disqualified" and outside.ceiling_tier == "cold"
    assert outside.disqualifiers == []  # the answers alone rule it out


def test_a_disqualifier_wins_whatever_is_missing(icp: Icp) -> None:
    q = score(icp, {"budget": sv(500)}, **IDS)
    assert q.decision == "disqualified" and q.disqualifiers == ["budget < 2000"]


def test_slots_required_for_booking_must_be_known(icp: Icp) -> None:
    answers = {
        "need": sv("build"),
        "company_size": sv("51-200"),
        "budget": sv(60000),
        "timeline": sv("asap"),
    }
    assert score(icp, answers, **IDS).decision == "qualified"
    strict = icp.model_copy(update={"required_for_booking": ["budget"]})
    q = score(strict, {**answers, "budget": SlotValue(None, evidence="idk", unknown=True)}, **IDS)
    assert q.decision == "undecided" and q.missing_for_booking == ["budget"]


def test_required_for_booking_must_name_icp_slots(tmp_path: Path) -> None:
    text = DEFAULT_ICP_PATH.read_text().replace(
        "required_for_booking: []", "required_for_booking: [budget, headcount]"
    )
    assert "headcount" in text
    path = tmp_path / "icp.yaml"
    path.write_text(text)
    with pytest.raises(IcpError, match="headcount"):
        load_icp(path)
