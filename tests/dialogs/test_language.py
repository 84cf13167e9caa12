"""Language detection and script families (issue 16, item 5): which language a message is in,
when a conversation moves to another translation, and that the move keeps its slots."""

from __future__ import annotations

import resource
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dialogs.catalog import ScriptCatalog, ScriptVersionEntry
from dialogs.language import detect, detector, first_language, switch_language
from dialogs.loader import load_scripts
from dialogs.multilingual import follow_language, warm
from dialogs.session import Session, SlotRecord

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = load_scripts(ROOT / "dialogs" / "scripts")
LANGS = ("en", "es", "pt")
NOW = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)


def catalog() -> ScriptCatalog:
    return ScriptCatalog([ScriptVersionEntry(s, "", "file") for s in SCRIPTS.values()])


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("hola", "es"),
        ("oi", "pt"),
        ("hi", "en"),
        ("buenas tardes", "es"),
        ("Bom dia, tudo bem?", "pt"),
        ("we need a new website", "en"),
        ("necesitamos una página web", "es"),
        ("precisamos de um site novo", "pt"),
        ("uns 200 funcionários", "pt"),
        ("unos 200 empleados", "es"),
        ("o quanto antes", "pt"),
        ("cuanto antes", "es"),
        ("meio milhão", "pt"),
        ("medio millón", "es"),
        ("hola! we need a website for our 40 person team", "en"),
        ("Somos uma agência de 40 pessoas e nosso follow-up é uma bagunça", "pt"),
        ("Somos una agencia de 40 personas y el seguimiento es un desastre", "es"),
        ("olá, como funciona?", "pt"),  # "olá" is Portuguese; Spanish says "hola"
        ("oie", "pt"),
        ("vc faz site?", "pt"),
        ("holi", "es"),
    ],
)
def test_the_first_message_picks_its_language(text: str, language: str) -> None:
    assert first_language(text, LANGS) == language


@pytest.mark.parametrize("text", ["ok", "40", "👍", "50k", "SEO", "marketing", "?"])
def test_a_message_with_no_language_picks_none(text: str) -> None:
    assert first_language(text, LANGS) is None


@pytest.mark.parametrize("current", LANGS)
@pytest.mark.parametrize(
    "text", ["ok", "hi", "hola", "oi", "40", "marketing", "sí", "sim", "yes", "no sé", "gracias"]
)
def test_short_messages_never_switch(text: str, current: str) -> None:
    assert switch_language(text, current, LANGS) is None


@pytest.mark.parametrize(
    ("text", "current", "language"),
    [
        ("perdona, mejor en español: tenemos unos 20 mil euros", "en", "es"),
        ("desculpa, posso falar em português? somos uns 40", "es", "pt"),
        ("sorry, can we do this in English? we are about 40 people", "pt", "en"),
        ("quero falar com um atendente", "en", "pt"),
    ],
)
def test_a_clear_change_of_language_switches(text: str, current: str, language: str) -> None:
    assert switch_language(text, current, LANGS) == language


@pytest.mark.parametrize(
    "text",  # lingua reads each as English at 0.96+
    [
        "growth marketing outbound leads",
        "lead generation B2B outbound",
        "full stack web development",
    ],
)
def test_jargon_does_not_switch(text: str) -> None:
    assert switch_language(text, "es", LANGS) is None
    assert switch_language(text, "pt", LANGS) is None


def test_the_current_language_is_kept_without_asking_lingua() -> None:
    # Markers of the current language: no reason to switch, whatever lingua would say.
    assert switch_language("we need a new website by march", "en", LANGS) is None
    assert switch_language("necesitamos una web para marzo", "es", LANGS) is None


def test_lingua_is_restricted_to_the_scripts_languages() -> None:
    lang, confidence = detect("Wir brauchen eine neue Webseite für unser Team", LANGS)
    assert lang in LANGS and 0.0 < confidence <= 1.0
    assert detect("👍", LANGS) == (None, 0.0)
    assert detect("anything", ("en",)) == ("en", 1.0)  # one language: nothing to detect


def test_the_detector_is_built_once() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    first = detector(frozenset(LANGS))
    assert detector(frozenset(LANGS)) is first
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert after - before < 400_000  # KB: three languages' models, well under 400 MB


def test_the_catalog_knows_each_familys_translations() -> None:
    cat = catalog()
    en = SCRIPTS["b2b_default"]
    assert cat.languages(en) == {"en", "es", "pt"}
    assert cat.variant(en, "pt") is SCRIPTS["b2b_pt"]
    assert cat.variant(en, "en") is en
    assert cat.variant(en, "fr") is None


def test_translations_share_slots_and_option_ids() -> None:
    """The ICP and the answers given so far must mean the same in every language."""
    en = SCRIPTS["b2b_default"]
    for sid in ("b2b_es", "b2b_pt"):
        other = SCRIPTS[sid]
        assert other.family == en.family
        assert other.slots == en.slots
        for q in en.questions:
            assert [o.id for o in other.question(q.slot).options] == [o.id for o in q.options]


def test_a_new_conversation_starts_in_the_language_of_its_first_message() -> None:
    cat = catalog()
    en = SCRIPTS["b2b_default"]
    script, session = follow_language(cat, en, Session.new(en, NOW), "oi, tudo bem?", new=True)
    assert script.id == "b2b_pt" and session.script_id == "b2b_pt"
    script, _ = follow_language(cat, en, Session.new(en, NOW), "40", new=True)
    assert script is en


def test_a_switch_keeps_every_slot_and_the_open_question() -> None:
    cat = catalog()
    en = SCRIPTS["b2b_default"]
    slots = {
        "need": SlotRecord(value="build", evidence="website"),
        "company_size": SlotRecord(value="11-50", evidence="40"),
    }
    session = Session.new(en, NOW).model_copy(
        update={"slots": slots, "open_slot": "budget", "reasks": {"budget": 1}, "turns": 3}
    )
    text = "perdona, mejor en español: no lo tengo claro"
    script, moved = follow_language(cat, en, session, text, new=False)
    assert script.id == "b2b_es"
    assert (moved.script_id, moved.script_version) == ("b2b_es", script.version)
    assert moved.slots == slots
    assert (moved.open_slot, moved.reasks, moved.turns) == ("budget", {"budget": 1}, 3)


def test_a_script_without_a_family_never_moves() -> None:
    en = SCRIPTS["b2b_default"].model_copy(update={"family": None})
    cat = ScriptCatalog([ScriptVersionEntry(en, "", "file")])
    session = Session.new(en, NOW)
    assert follow_language(cat, en, session, "oi, tudo bem?", new=True) == (en, session)


def test_warming_builds_one_detector_per_language_set() -> None:
    assert warm(catalog()) == 1  # en/es/pt: one family, one detector
    lone = SCRIPTS["b2b_default"].model_copy(update={"family": None})
    assert warm(ScriptCatalog([ScriptVersionEntry(lone, "", "file")])) == 0


def test_two_scripts_of_one_family_in_one_language_resolve_to_the_smaller_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    es = SCRIPTS["b2b_es"]
    twin = es.model_copy(update={"id": "a_b2b_es_copy"})
    with caplog.at_level("WARNING", logger="leadbot.scripts"):
        cat = ScriptCatalog([ScriptVersionEntry(s, "", "file") for s in (*SCRIPTS.values(), twin)])
    assert cat.variant(SCRIPTS["b2b_default"], "es") is twin
    assert "both family 'b2b' in 'es'" in caplog.text
