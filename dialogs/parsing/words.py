"""Numbers written as words, in English, Spanish and Portuguese: "twenty", "two hundred and
fifty", "a dozen", "veinticinco", "treinta y cinco", "doscientos", "quince mil",
"vinte e cinco", "duzentos", "meio milhão", "medio millón", "half a million".

Only what prospects write in a chat; not a general-purpose number speller.
"""

from __future__ import annotations

import re
from functools import cache

_UNITS: dict[str, float] = {
    # English
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fourty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "couple": 2,
    "few": 3,
    # "alguns mil", "algunos miles": a few (only before a scale, see _WEAK)
    "algunos": 3,
    "alguns": 3,
    # Spanish (accents are optional in chat, so both spellings)
    "cero": 0,
    "uno": 1,
    "una": 1,
    "un": 1,
    "dos": 2,
    "tres": 3,
    "cuatro": 4,
    "cinco": 5,
    "seis": 6,
    "siete": 7,
    "ocho": 8,
    "nueve": 9,
    "diez": 10,
    "once": 11,
    "doce": 12,
    "trece": 13,
    "catorce": 14,
    "quince": 15,
    "dieciseis": 16,
    "dieciséis": 16,
    "diecisiete": 17,
    "dieciocho": 18,
    "diecinueve": 19,
    "veinte": 20,
    "veintiuno": 21,
    "veintiun": 21,
    "veintiún": 21,
    "veintidos": 22,
    "veintidós": 22,
    "veintitres": 23,
    "veintitrés": 23,
    "veinticuatro": 24,
    "veinticinco": 25,
    "veintiseis": 26,
    "veintiséis": 26,
    "veintisiete": 27,
    "veintiocho": 28,
    "veintinueve": 29,
    "treinta": 30,
    "cuarenta": 40,
    "cincuenta": 50,
    "sesenta": 60,
    "setenta": 70,
    "ochenta": 80,
    "noventa": 90,
    "ciento": 100,
    "doscientos": 200,
    "doscientas": 200,
    "trescientos": 300,
    "trescientas": 300,
    "cuatrocientos": 400,
    "cuatrocientas": 400,
    "quinientos": 500,
    "quinientas": 500,
    "seiscientos": 600,
    "seiscientas": 600,
    "setecientos": 700,
    "setecientas": 700,
    "ochocientos": 800,
    "ochocientas": 800,
    "novecientos": 900,
    "novecientas": 900,
    # Portuguese (Brazil); "cinco", "seis", "mil"... are shared with Spanish above
    "um": 1,
    "quatro": 4,
    "doze": 12,
    "quinze": 15,
    "catorze": 14,
    "dois": 2,
    "duas": 2,
    "três": 3,
    "sete": 7,
    "oito": 8,
    "nove": 9,
    "dez": 10,
    "onze": 11,
    "treze": 13,
    "quatorze": 14,
    "dezesseis": 16,
    "dezessete": 17,
    "dezoito": 18,
    "dezenove": 19,
    "vinte": 20,
    "trinta": 30,
    "quarenta": 40,
    "cinquenta": 50,
    "cinqüenta": 50,
    "sessenta": 60,
    "oitenta": 80,
    "cento": 100,
    "duzentos": 200,
    "duzentas": 200,
    "trezentos": 300,
    "trezentas": 300,
    "quatrocentos": 400,
    "quatrocentas": 400,
    "quinhentos": 500,
    "quinhentas": 500,
    "seiscentos": 600,
    "setecentos": 700,
    "oitocentos": 800,
    "novecentos": 900,
    # "half a million", "medio millón", "meio milhão": a half only counts before a scale
    "half": 0.5,
    "medio": 0.5,
    "meio": 0.5,
    "par": 2,  # "un par de cientos", "um par de meses"
}
_SCALES: dict[str, int] = {
    "hundred": 100,
    "cien": 100,
    "dozen": 12,
    "thousand": 1000,
    "mil": 1000,
    "million": 1_000_000,
    "millon": 1_000_000,
    "millón": 1_000_000,
    "millones": 1_000_000,
    "cem": 100,
    "milhão": 1_000_000,
    "milhao": 1_000_000,
    "milhões": 1_000_000,
    "milhoes": 1_000_000,
    # Latin American slang for money: "un par de lucas" (2,000), "un palo" (a million)
    "luca": 1000,
    "lucas": 1000,
    "palo": 1_000_000,
    "palos": 1_000_000,
}
# Plural scales with no count before them mean "at least two of": "hundreds of employees",
# "miles de personas", "centenas de funcionários" (a size past 200, not 100).
_PLURAL_SCALES: dict[str, int] = {
    "dozens": 12,
    "decenas": 10,
    "dezenas": 10,
    "hundreds": 100,
    "cientos": 100,
    "centenares": 100,
    "centenas": 100,
    "thousands": 1000,
    "miles": 1000,
    "milhares": 1000,
}
_SCALES.update(_PLURAL_SCALES)
# Fractions of the scale that follows ("a quarter million", "un cuarto de millón") or, after
# it, of the scale before ("un millón y medio", "a million and a half").
_FRACTIONS = {
    "half": 0.5,
    "medio": 0.5,
    "meio": 0.5,
    "quarter": 0.25,
    "cuarto": 0.25,
    "quarto": 0.25,
}
# Words that are a number only next to another number word ("a hundred", "one hundred").
_ARTICLES = {"a", "an"}
# An indefinite article before a fraction or a pair is not "one": "un par", "um quarto de".
_INDEFINITE = {"a", "an", "un", "una", "um", "uma"}
# Common words that happen to be numbers; alone they are too ambiguous to read as one
# ("no one", "una empresa", "a few questions", "once we start", "un par de cosas").
_WEAK = {"one", "un", "una", "uno", "um", "few", "couple", "once", "half", "medio", "meio", "par"}
_WEAK |= {
    "luca",
    "lucas",
    "palo",
    "palos",
    "pocos",
    "poucos",
    "algunos",
    "alguns",
}  # alone, a name ("Lucas") or a stick
# "and" / "y" / "e" join parts ("vinte e cinco"); "of"/"de" only join number words
# ("a couple of hundred", "cientos de miles"); "and a" before a half ("a million and a half").
_JOINERS = r"(?:\s*-\s*|\s+(?:(?:and|y|e)\s+(?:an?\s+(?=half\b))?|of\s+|de\s+)?)"
_FILLERS = ("and", "y", "e", "of", "de")
_BIG_SCALE_WORDS = frozenset(w for w, v in _SCALES.items() if v >= 1000)


@cache
def number_words_pattern() -> str:
    """A regex (no groups) for a run of number words such as "two hundred and fifty"."""
    words = sorted([*_UNITS, *_SCALES], key=len, reverse=True)
    word = "(?:" + "|".join(re.escape(w) for w in words) + ")"
    big = r"(?=(?:million|mill[oó]n|milh[aã]o|thousand|mil)\b)"
    lead = r"(?:(?:a|an)\s+(?=(?:hundred|thousand|dozen|million|couple|few)\b))?"
    half = rf"(?:half\s+an?\s+{big})"  # "half a million"
    quarter = (  # "a quarter million", "quarter of a million", "un cuarto de millón"
        r"(?:(?:(?:a|un|um)\s+)?(?:quarter|cuarto|quarto)\s+(?:of\s+an?\s+|de\s+(?:un\s+|um\s+)?)?"
        rf"{big})"
    )
    return rf"(?:{half}|{quarter}|{lead}){word}(?:{_JOINERS}{word}\b)*"


@cache
def number_words() -> frozenset[str]:
    """Every word that can start or be part of a number (cheap pre-check for the regex)."""
    return frozenset([*_UNITS, *_SCALES, "dozen", "quarter", "cuarto", "quarto"])


def words_value(text: str) -> float | None:
    """The value of a run matched by :func:`number_words_pattern`, or None if it is just a
    common word that looks like a number ("one", "una", "few")."""
    reading = words_reading(text)
    return None if reading is None else reading[0]


def words_reading(text: str) -> tuple[float, bool, bool] | None:
    """``(value, at_least, big)`` for a run of number words: ``at_least`` when a plural scale
    stood without a count ("hundreds" is 200 or more), ``big`` when a scale of a thousand or
    more was written ("treinta mil", "half a million"), the way amounts of money are."""
    tokens = [t for t in re.split(r"[\s-]+", text.lower()) if t and t not in _FILLERS]
    if not tokens:
        return None
    if len(tokens) == 1 and tokens[0] in _WEAK:
        return None
    total = 0.0
    current = 0.0
    fraction = 0.0
    last_scale = 0
    seen = at_least = False
    for i, tok in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if tok in _ARTICLES or (tok in _INDEFINITE and (nxt in _FRACTIONS or nxt == "par")):
            continue  # "a hundred" is one hundred: a scale with nothing before counts as 1
        if tok in _FRACTIONS and (tok not in _UNITS or nxt in _SCALES or not nxt):
            if not nxt and last_scale >= 1000 and not current:
                total += _FRACTIONS[tok] * last_scale  # "un millón y medio"
            else:
                fraction = _FRACTIONS[tok]  # "a quarter million", "medio millón"
            seen = True
        elif tok in _UNITS:
            current += _UNITS[tok]
            seen = True
        elif tok in _SCALES:
            scale = _SCALES[tok]
            if tok in _PLURAL_SCALES and not (current or fraction):
                current, at_least = 2, True  # "hundreds" alone: at least two hundred
            base = fraction or current
            fraction = 0.0
            seen = True
            last_scale = max(last_scale, scale)
            if scale >= 1000:
                total += (base or 1) * scale  # "mil" alone is 1,000; "meio milhão" 500,000
                current = 0
            elif tok in ("cien", "cem") and current:
                current += 100
            else:
                current = (base or 1) * scale
        else:
            return None
    if not seen:
        return None
    big = any(t in _BIG_SCALE_WORDS for t in tokens)
    return float(total + current + fraction), at_least, big
