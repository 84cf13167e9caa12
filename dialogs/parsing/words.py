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
}
# Words that are a number only next to another number word ("a hundred", "one hundred").
_ARTICLES = {"a", "an"}
# Common words that happen to be numbers; alone they are too ambiguous to read as one
# ("no one", "una empresa", "a few questions", "once we start").
_WEAK = {"one", "un", "una", "uno", "um", "few", "couple", "once", "half", "medio", "meio"}
# "and" / "y" / "e" join parts ("vinte e cinco"); "of" only follows "a couple of hundred".
_JOINERS = r"(?:\s*-\s*|\s+(?:and\s+|y\s+|e\s+|of\s+)?)"
_FILLERS = ("and", "y", "e", "of")


@cache
def number_words_pattern() -> str:
    """A regex (no groups) for a run of number words such as "two hundred and fifty"."""
    words = sorted([*_UNITS, *_SCALES], key=len, reverse=True)
    word = "(?:" + "|".join(re.escape(w) for w in words) + ")"
    lead = r"(?:(?:a|an)\s+(?=(?:hundred|thousand|dozen|million|couple|few)\b))?"
    half = r"(?:half\s+an?\s+(?=(?:million|thousand)\b))"  # "half a million"
    return rf"(?:{half}|{lead}){word}(?:{_JOINERS}{word}\b)*"


@cache
def number_words() -> frozenset[str]:
    """Every word that can start or be part of a number (cheap pre-check for the regex)."""
    return frozenset([*_UNITS, *_SCALES, "dozen"])


def words_value(text: str) -> float | None:
    """The value of a run matched by :func:`number_words_pattern`, or None if it is just a
    common word that looks like a number ("one", "una", "few")."""
    tokens = [t for t in re.split(r"[\s-]+", text.lower()) if t and t not in _FILLERS]
    if not tokens:
        return None
    if len(tokens) == 1 and tokens[0] in _WEAK:
        return None
    total = 0.0
    current = 0.0
    seen = False
    for tok in tokens:
        if tok in _ARTICLES:
            continue  # "a hundred" is one hundred: a scale with nothing before counts as 1
        if tok in _UNITS:
            current += _UNITS[tok]
            seen = True
        elif tok in _SCALES:
            scale = _SCALES[tok]
            seen = True
            if scale >= 1000:
                total += (current or 1) * scale  # "mil" alone is 1,000; "meio milhão" 500,000
                current = 0
            elif tok in ("cien", "cem") and current:
                current += 100
            else:
                current = (current or 1) * scale
        else:
            return None
    return float(total + current) if seen else None
