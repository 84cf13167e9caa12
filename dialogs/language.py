"""Which language is the prospect writing in? Among the scripts' languages (ISO 639-1 codes:
English, Spanish and Portuguese ship), offline.

Two readers, cheapest first:

1. **Marker words**: short words that belong to one of the languages only ("hola", "gracias",
   "cuánto" / "oi", "obrigado", "não", "você" / "hi", "thanks", "we"). They settle the short
   messages a statistical detector cannot ("hola" alone is 45% Spanish to lingua).
2. **lingua** (``lingua-language-detector``: its n-gram models ship in the wheel, no
   download), restricted to the languages the scripts cover, for messages of a few words.
   Built once per process and per language set (building takes ~2-3 s, holding the GIL, and
   ~130 MB for three languages in high-accuracy mode), under a lock; the service builds it at
   start (:func:`dialogs.multilingual.warm`), before it serves.

The policy is asymmetric on purpose: choosing the first script of a conversation takes little
evidence (one marker word, or lingua at :data:`FIRST_CONFIDENCE`), but moving a running
conversation to another language takes a lot (:func:`switch_language`): "ok", "hi", "40" or
"marketing" never move anyone.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

from dialogs.parsing.normalize import fold, normalize, word_set

if TYPE_CHECKING:
    from lingua import LanguageDetector

SUPPORTED = ("en", "es", "pt")  # the languages with marker words (lingua knows ~75)
DETECT_MAX_CHARS = 300  # the start of a message says its language; longer costs more
FIRST_CONFIDENCE = 0.70  # lingua's share for the top language when choosing the first script
SWITCH_CONFIDENCE = 0.90  # ... and to move a running conversation to another language
SWITCH_MIN_WORDS = 3  # fewer words never move a running conversation (lingua alone)
SWITCH_MIN_MARKERS = 2  # marker words of the new language (and none of the old) that do
SWITCH_LINGUA_ONLY_WORDS = 6  # words for lingua to move one without any marker word

# Words of one language only, folded (lower-case, accent-free). Not the shared ones: "para",
# "que", "somos", "empresa", "mes", "ano", "no", "me" are in two of them.
MARKERS: dict[str, frozenset[str]] = {
    "en": word_set(
        "hi hello hey thanks thank the we our need needs want looking people employees and is"
        " are with you your budget next month year about around just asap soon not sure dont"
        " idk yes good morning please pls start company this that what how much would like"
        " can could im were of by to get some"
    ),
    "es": word_set(
        "hola buenas buenos gracias necesito necesitamos necesitan quiero queremos tenemos"
        " personas empleados trabajadores presupuesto cuanto cuanta cuantos el los las una"
        " unos unas con del muy pero tambien hacer usted ustedes vosotros equipo ahora ya lo"
        " hay ayuda pagina sitio marzo junio julio enero febrero mayo septiembre octubre"
        " noviembre diciembre llamada hablar persona millones medio cuanto gustaria"
        " mucho poco tengo soy aqui queria holi saludos porfa oye disculpa nosotros"
    ),
    "pt": word_set(
        "oi obrigado obrigada valeu tudo bom boa preciso precisamos precisa quero queremos"
        " temos pessoas pessoa funcionarios orcamento quanto nao sim voce voces uma um uns umas"
        " com dos das na mais muito tambem fazer agora ja milhao milhoes reais marco"
        " junho julho janeiro fevereiro maio setembro outubro novembro dezembro falar"
        " atendente equipe aplicativo ainda pra ta ne meio tenho sou aqui"
        " gostaria queria beleza certo isso essa esse ola oie eai vc vcs obg blz"
    ),
}
# "queremos", "queria", "aqui" are Spanish and Portuguese alike: drop what two lists share.
_SHARED = {w for a in MARKERS for b in MARKERS if a < b for w in MARKERS[a] & MARKERS[b]}
MARKERS = {lang: words - _SHARED for lang, words in MARKERS.items()}
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def markers(text: str, languages: Iterable[str] = SUPPORTED) -> tuple[dict[str, int], int]:
    """Marker words per language in ``text``, and how many words it has."""
    words = _WORD.findall(fold(normalize(text, DETECT_MAX_CHARS)))
    counts = {lang: sum(w in MARKERS.get(lang, ()) for w in words) for lang in languages}
    return counts, len(words)


def first_language(text: str, languages: Iterable[str]) -> str | None:
    """The language to start a conversation in, or None when ``text`` does not say.

    One language's marker words and no other's decide ("hola", "oi tudo bem"); else lingua,
    for two words or more, at :data:`FIRST_CONFIDENCE`."""
    langs = tuple(languages)
    counts, n_words = markers(text, langs)
    only = _only(counts)
    if only is not None and (n_words < 4 or counts[only] >= 2):
        return only
    if n_words < 2 or len(langs) < 2:
        return only
    lang, confidence = detect(text, langs)
    if lang is not None and confidence >= FIRST_CONFIDENCE:
        return lang
    return only


def switch_language(text: str, current: str, languages: Iterable[str]) -> str | None:
    """The language a running conversation in ``current`` should move to, or None to stay.

    It moves only on strong evidence: :data:`SWITCH_MIN_MARKERS` marker words of the new
    language and none of ``current``, confirmed by lingua when the message is long enough to
    ask it; or lingua at :data:`SWITCH_CONFIDENCE` on a message of :data:`SWITCH_MIN_WORDS`
    words or more with a marker word of the new language (of
    :data:`SWITCH_LINGUA_ONLY_WORDS` without one). lingua is not asked when the markers already say
    the message is in ``current`` (most turns)."""
    langs = tuple(languages)
    if len(langs) < 2:
        return None
    counts, n_words = markers(text, langs)
    if n_words < 2:
        return None  # "ok", "hi", "40", "👍": never a reason to move
    mine = counts.get(current, 0)
    others = {lang: n for lang, n in counts.items() if lang != current and n}
    if mine and mine >= max(others.values(), default=0):
        return None
    only = _only(counts)
    if only is not None and only != current and counts[only] >= SWITCH_MIN_MARKERS:
        if n_words < SWITCH_MIN_WORDS:
            return only
        lang, _ = detect(text, langs)
        return only if lang == only else None  # lingua agrees (an English "hola, we need...")
    if n_words < SWITCH_MIN_WORDS:
        return None
    lang, confidence = detect(text, langs)
    if lang is None or lang == current or confidence < SWITCH_CONFIDENCE:
        return None
    # Jargon reads as English to lingua ("SEO marketing digital"): without one marker word of
    # the new language, only a longer message moves the conversation.
    return lang if counts.get(lang, 0) or n_words >= SWITCH_LINGUA_ONLY_WORDS else None


def _only(counts: dict[str, int]) -> str | None:
    found = [lang for lang, n in counts.items() if n]
    return found[0] if len(found) == 1 else None


def detect(text: str, languages: Iterable[str]) -> tuple[str | None, float]:
    """lingua's most likely language of ``text`` among ``languages`` and its confidence
    (0-1); (None, 0.0) when it has no opinion (digits, emoji)."""
    langs = detectable(languages)
    if len(langs) < 2:
        return (next(iter(langs), None), 1.0 if langs else 0.0)
    values = detector(langs).compute_language_confidence_values(normalize(text, DETECT_MAX_CHARS))
    if not values or values[0].value <= 0.0:
        return None, 0.0
    top = values[0]
    return top.language.iso_code_639_1.name.lower(), float(top.value)


def detectable(languages: Iterable[str]) -> frozenset[str]:
    """The codes among ``languages`` lingua can tell apart (ISO 639-1 it has a model for)."""
    return frozenset(c for c in languages if _lingua_knows(c))


@lru_cache(maxsize=64)
def _lingua_knows(code: str) -> bool:
    """Whether lingua has a model for ISO 639-1 ``code`` ("pt" yes, "xx" no)."""
    from lingua import IsoCode639_1

    return hasattr(IsoCode639_1, code.upper()) and len(code) == 2


_BUILD_LOCK = threading.Lock()


def detector(languages: frozenset[str]) -> LanguageDetector:
    """The process's lingua detector for ``languages`` (built on first use, then shared)."""
    with _BUILD_LOCK:  # two first turns at once must not build it twice (3 s, 130 MB each)
        return _build(languages)


@lru_cache(maxsize=4)
def _build(languages: frozenset[str]) -> LanguageDetector:
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    chosen = [Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper())) for c in languages]
    return LanguageDetectorBuilder.from_languages(*chosen).with_preloaded_language_models().build()
