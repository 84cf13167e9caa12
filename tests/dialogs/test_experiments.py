"""A/B experiments in a script (issue 16, item 6): stable weighted assignment, variants that
change texts only, checked at load time with file:line, and conversations that keep their
variant."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialogs.actions import SendCtaUrl, SendList, SendText
from dialogs.engine import step
from dialogs.events import ChoiceSelected, Started, TextReceived
from dialogs.experiments import assign, controls, resume, start, variant_script
from dialogs.icp import load_icp
from dialogs.loader import check_dir, load_script, load_scripts
from dialogs.script import Experiment, Variant

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT_FILE = ROOT / "tests" / "data" / "experiments" / "b2b_experiment.yaml"
SCRIPT = load_script(EXPERIMENT_FILE)
ICP = load_icp()
T0 = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)
SHORT_GREETING = "Hi! Four quick questions and you're booked in."
SHORT_NEED = "What do you need help with?"
BASE_NEED = "What are you looking for help with?"


def expected_variant(experiment_id: str, key: str, weights: list[tuple[str, int]]) -> str:
    """The documented rule, computed here on its own: the first 8 bytes of
    SHA-256("<experiment>:<key>") modulo the total weight, ranges in declared order."""
    point = int.from_bytes(hashlib.sha256(f"{experiment_id}:{key}".encode()).digest()[:8], "big")
    point %= sum(w for _, w in weights)
    for name, weight in weights:
        if point < weight:
            return name
        point -= weight
    raise AssertionError


def experiment(**weights: int) -> Experiment:
    return Experiment(id="exp-1", variants={k: Variant(weight=w) for k, w in weights.items()})


# -- assignment ----------------------------------------------------------------------------


@given(st.text(min_size=1, max_size=40))
def test_assignment_is_the_documented_hash_and_the_same_every_time(key: str) -> None:
    exp = experiment(a=30, b=50, c=20)
    first = assign(exp, key)
    assert (
        first
        == assign(exp, key)
        == expected_variant("exp-1", key, [("a", 30), ("b", 50), ("c", 20)])
    )


@settings(max_examples=25, deadline=None)
@given(
    weights=st.lists(st.integers(min_value=1, max_value=100), min_size=2, max_size=4),
    salt=st.from_regex(r"[a-z0-9]{0,8}", fullmatch=True),
)
def test_assignment_follows_the_weights(weights: list[int], salt: str) -> None:
    names = [f"v{i}" for i in range(len(weights))]
    exp = Experiment(
        id=f"exp-{salt}",
        variants={n: Variant(weight=w) for n, w in zip(names, weights, strict=True)},
    )
    n = 20_000
    counts = dict.fromkeys(names, 0)
    for lead_id in range(n):
        counts[assign(exp, f"lead:{lead_id}")] += 1
    total = sum(weights)
    for name, weight in zip(names, weights, strict=True):
        share = weight / total
        # 5 standard deviations of a binomial share: fails for a biased split, not by chance.
        tolerance = 5 * (share * (1 - share) / n) ** 0.5
        assert abs(counts[name] / n - share) <= tolerance, (name, counts, weights)


def test_a_weight_of_zero_gets_no_new_conversations() -> None:
    exp = experiment(a=1, b=0)
    assert {assign(exp, f"k{i}") for i in range(500)} == {"a"}


def test_a_new_experiment_id_redraws_everyone() -> None:
    a = Experiment(id="one", variants={"x": Variant(), "y": Variant()})
    b = Experiment(id="two", variants={"x": Variant(), "y": Variant()})
    keys = [f"k{i}" for i in range(400)]
    same = sum(assign(a, k) == assign(b, k) for k in keys)
    assert 120 < same < 280  # independent draws agree about half the time


# -- the variant's script --------------------------------------------------------------------


def key_for(variant: str) -> str:
    weights = [(k, v.weight) for k, v in SCRIPT.experiment.variants.items()]  # type: ignore[union-attr]
    return next(
        f"1415555{i:04d}"
        for i in range(1000)
        if expected_variant("greeting-test-1", f"1415555{i:04d}", weights) == variant
    )


def test_a_variant_changes_only_its_texts() -> None:
    short = variant_script(SCRIPT, "short")
    assert short.greeting == SHORT_GREETING
    assert short.question("need").text == SHORT_NEED
    assert short.outcomes["qualified"].message.startswith("Great fit!")
    assert short.slots == SCRIPT.slots and short.id == SCRIPT.id
    assert short.version == SCRIPT.version
    assert short.question("need").options == SCRIPT.question("need").options
    assert variant_script(SCRIPT, "control").greeting == SCRIPT.greeting
    assert variant_script(SCRIPT, "short") is short  # cached: a turn does not re-validate


def test_a_conversation_on_a_variant_says_its_texts_through_the_engine() -> None:
    script, session = start(SCRIPT, key_for("short"), T0, name="Ana")
    assert (session.experiment, session.variant) == ("greeting-test-1", "short")
    result = step(script, session, Started(), T0, icp=ICP)
    said = [a for a in result.actions if isinstance(a, SendText | SendList)]
    assert any(SHORT_GREETING in getattr(a, "text", getattr(a, "body", "")) for a in said)
    assert any(SHORT_NEED in getattr(a, "body", "") for a in said)
    assert not any(BASE_NEED in getattr(a, "body", "") for a in said)

    # Next turn, as the processor does it: the base script from the catalog, resumed.
    session = result.session
    for event in (
        ChoiceSelected("need:build"),
        TextReceived("around 60 people"),
        TextReceived("50k"),
        TextReceived("asap"),
    ):
        result = step(resume(SCRIPT, session), session, event, T0, icp=ICP)
        session = result.session
    assert session.status == "qualified" and session.variant == "short"
    cta = [a for a in result.actions if isinstance(a, SendCtaUrl)]
    assert cta and cta[0].body.startswith("Great fit!")


def test_the_control_conversation_says_the_scripts_texts() -> None:
    script, session = start(SCRIPT, key_for("control"), T0)
    assert session.variant == "control"
    assert script.greeting == SCRIPT.greeting
    assert resume(SCRIPT, session).question("need").text == BASE_NEED


def test_a_script_without_an_experiment_is_left_alone() -> None:
    plain = load_script(ROOT / "dialogs" / "scripts" / "b2b_default.yaml")
    script, session = start(plain, "anyone", T0)
    assert script is plain and session.experiment is None and session.variant is None
    assert resume(plain, session) is plain


def test_a_session_whose_variant_is_gone_continues_on_the_script() -> None:
    _, session = start(SCRIPT, key_for("short"), T0)
    other = session.model_copy(update={"experiment": "another-experiment"})
    assert resume(SCRIPT, other) is SCRIPT
    assert resume(SCRIPT, session.model_copy(update={"variant": "gone"})) is SCRIPT


def test_the_control_is_the_first_variant_declared() -> None:
    assert controls([SCRIPT]) == {"greeting-test-1": "control"}


# -- checked at load time ------------------------------------------------------------------


BAD_EXPERIMENT = """\
experiment:
  id: bad-1
  variants:
    Control!:
      weight: 1
    b:
      weight: 1
      overrides:
        questions.nobody.text: "Who?"
        version: "9"
        cta_title: "Book a call with one of our experts today"
        questions.need.slot: other
    c:
      overrides:
        questions.need.options.build.title: "Build something for us, please"
"""


def bad_file(tmp_path: Path, text: str) -> Path:
    source = EXPERIMENT_FILE.read_text("utf-8")
    start_at = source.index("experiment:")
    end_at = source.index("\ngreeting:")
    path = tmp_path / "bad.yaml"
    path.write_text(source[:start_at] + text + source[end_at:], "utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    lines = path.read_text("utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def test_every_bad_variant_is_reported_with_its_file_and_line(tmp_path: Path) -> None:
    path = bad_file(tmp_path, BAD_EXPERIMENT)
    found = {(p.line, p.message) for p in check_dir(tmp_path)}
    lines = {line for line, _ in found}
    assert all(p_file == str(path) for p_file in {p.file for p in check_dir(tmp_path)})
    assert line_of(path, "Control!:") in lines  # a bad variant name
    assert line_of(path, "questions.nobody.text") in lines  # no such slot
    assert line_of(path, 'version: "9"') in lines  # not a text a variant may change
    assert line_of(path, "cta_title:") in lines  # 20 chars max, as in any script
    assert line_of(path, "options.build.title") in lines  # a button title too long
    assert line_of(path, "questions.need.slot") in lines  # ids never vary
    messages = " | ".join(m for _, m in found)
    assert "no item of 'questions' with slot 'nobody'" in messages
    assert "String should have at most 20 characters" in messages
    assert "max 24 when shown as list" in messages


def test_an_experiment_needs_two_variants_and_some_weight(tmp_path: Path) -> None:
    bad_file(tmp_path, "experiment:\n  id: solo\n  variants:\n    a:\n      weight: 0\n")
    messages = [p.message for p in check_dir(tmp_path)]
    assert any("at least 2 variants" in m for m in messages), messages
    assert any("weights add up to 0" in m for m in messages), messages


def test_the_example_experiment_script_loads() -> None:
    assert check_dir(EXPERIMENT_FILE.parent) == []
    assert "b2b_experiment" in load_scripts(EXPERIMENT_FILE.parent)


@pytest.mark.parametrize("key", ["", "x" * 500, "ünïcødé 👋"])
def test_any_key_gets_a_variant(key: str) -> None:
    assert assign(SCRIPT.experiment, key) in ("control", "short")  # type: ignore[arg-type]
