"""Find amounts and counts in prospect text: "50k", "$1.2M", "1,200", "about 200 people",
"between 20 and 50", "twenty", "2.5m€", "15 mil" (Spanish and Portuguese: thousand),
"R$ 50 mil", "uns 200 funcionários", "meio milhão", "2-3k/mo", "50 lucas", "doscientos y pico",
"hundreds of employees".

:func:`find_numbers` returns every number with its verbatim span, the unit it was written
with (people, currency, or a time/percent/year unit that makes it *not* a count or an amount)
and whether it was a range, a bound ("over 200", "200-odd") or approximate ("about 50"). The
caller decides which number answers which question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, NamedTuple

from dialogs.parsing.currency import CUR_WORD, MONEY_MULTS, MULT, MULTS, currency_code
from dialogs.parsing.normalize import fold, matches_at_words, tokens, word_set
from dialogs.parsing.words import number_words, number_words_pattern, words_reading

Unit = Literal["people", "currency", "time", "percent", "year", "ordinal"]
Bound = Literal["above", "below"]

_TAIL = rf"""
    (?:\s?(?P<mult>(?:{MULT}))(?![\w])(?P<half>\s+(?:y|e|and)\s+(?:a\s+)?(?:medio|meio|half)\b)?)?
    (?P<plus>\+)?
    (?:\s?(?P<post>[$€£¥₹]|\b(?:{CUR_WORD})\b))?
    (?P<ish>\s?-?ish\b)?
"""
# Digits first: the scanner can skip quickly to the next digit (a leading optional currency
# group would make it try the whole pattern at every position).
_DIGITS = re.compile(
    r"(?<![\w.,])(?P<num>\d{1,3}(?:[.,\u202f]\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?)(?![.,]?\d)"
    + _TAIL,
    re.IGNORECASE | re.VERBOSE,
)
_WORDS = re.compile(
    rf"\b(?P<words>{number_words_pattern()})\b" + _TAIL, re.IGNORECASE | re.VERBOSE
)
_DIGITS_LOW = re.compile(_DIGITS.pattern, re.VERBOSE)  # for lower-cased text
_WORDS_LOW = re.compile(_WORDS.pattern, re.VERBOSE)
_HAS_DIGIT = re.compile(r"\d")
# Thousands grouped with spaces ("€50 000", "50 000 reais", a reply that is just "50 000"):
# read as one amount only beside a currency or alone, since "20 300" could be two numbers.
# The spaces become narrow no-break spaces (same length, so spans stay valid). A run never
# starts inside another ("(?<!\d )"): the scan stays linear on a reply of a thousand digits.
_SPACED_DIGITS = re.compile(r"\d \d{3}")
_SPACED_THOUSANDS = re.compile(
    rf"(?<=[$€£¥₹])\s?\d{{1,3}}(?: \d{{3}})+(?!\d)"
    rf"|(?<![\d.,])(?<!\d )\d{{1,3}}(?: \d{{3}})+(?=\s?(?:[$€£¥₹]|(?:{CUR_WORD})\b))"
    r"|^\s*\d{1,3}(?: \d{3})+\s*$",
    re.IGNORECASE,
)
# Words a run of number words can start with: the number words, and the articles and
# fractions of "a hundred", "half a million", "a quarter million", "un cuarto de millón".
_NUMBER_WORDS = number_words()
_RUN_STARTS = _NUMBER_WORDS | {"a", "an"}
_PRE = re.compile(rf"(?:[$€£¥₹]|\b(?:{CUR_WORD}))\s?$", re.IGNORECASE)
_PEOPLE = re.compile(  # "40 people", "40 full-time devs", "a 40-person agency"
    r"^\s*-?\s*(?:[\w-]+\s+){0,2}?(?:people|persons?|ppl|pax|employees?|emps?|staff(?:ers)?|folks"
    r"|guys|heads|headcount|team\s*members|devs|developers|engineers|workers"
    r"|agents|reps|salespeople|fte|ftes|personas?|empleados?|trabajadores|colaboradores"
    r"|gente|personal|miembros|pessoas?|funcion[aá]rios?|profissionais|membros|cabe[cç]as"
    r"|vendedores|consultores|partners|co-?founders|founders|s[oó]cios|socias|contractors"
    r"|freelancers)\b",
    re.IGNORECASE,
)
_PEOPLE_BEFORE = re.compile(
    r"(?:\b(?:team|company|staff|crew|org|organization|organisation|headcount|equipo|empresa"
    r"|equipe)\s+(?:of|is|de|is\s+about|of\s+about|de\s+unos|de\s+unas|de\s+uns"
    r"|de\s+umas|com)?|\btime\s+(?:de|com)|\bwe\s*(?:'re|are)|\bwe're|\bsomos|\bwe\s+have|\btenemos|\btemos"
    r"|\bwe\s+employ|\bemployees?:?|\bstaff:?|\bheadcount:?|\bfuncion[aá]rios:?)"
    r"\s*(?:about|around|roughly|approx\.?|like|some|~|unos|unas|uns|umas|casi|quase|más\s+de"
    r"|mas\s+de|mais\s+de|cerca\s+de|over|under|almost|nearly)?\s*$",
    re.IGNORECASE,
)
_TIME_AFTER = re.compile(
    r"^\s*(?:more\s+|m[aá]s\s+|mais\s+)?(?:days?|d[ií]as?|weeks?|wks?|semanas?|months?|mos?"
    r"|meses|m[eê]s|years?|yrs?|a[nñ]os?|anos?|hours?|hrs?|horas?|minutes?|mins?|minutos?|am"
    r"|pm|quarters?|trimestres?)\b",
    re.IGNORECASE,
)
# "five-figure budget", "6 figures", "5-6 figures": the least such an amount is.
_FIGURES_AFTER = re.compile(
    r"^\s*-?\s*(?:figures?|figure\s+sum|d[ií]gitos|cifras)\b", re.IGNORECASE
)
# "low/mid/high five figures", "cinco cifras altas": where in the range the amount is.
_LEVELS = {
    "low": 1.0,
    "lower": 1.0,
    "mid": 5.0,
    "middle": 5.0,
    "medium": 5.0,
    "high": 7.0,
    "upper": 7.0,
    "bajas": 1.0,
    "medias": 5.0,
    "altas": 7.0,
    "baixos": 1.0,
    "medios": 5.0,
    "altos": 7.0,
}
_FIGURES_LEVEL = re.compile(
    r"\b(?P<level>low|lower|mid|middle|medium|high|upper)[\s-]*$", re.IGNORECASE
)
_FIGURES_LEVEL_AFTER = re.compile(
    r"\s+(?P<level>bajas|medias|altas|baixos|medios|altos)\b", re.IGNORECASE
)
# "200-odd", "twenty-something", "doscientos y pico", "duzentos e poucos": more than that.
_MORE_AFTER = re.compile(
    r"^(?:\s*-\s*|\s+)(?:odd|something|plus)\b|^\s+(?:and|y|e)\s+(?:something|pico|poco|tantos"
    r"|tantas|poucos|poucas|pouco|algo|algunos|alguns|cacetada)\b",
    re.IGNORECASE,
)
# After a bare amount, words that still leave it an amount ("30 mil de presupuesto", "50k and
# we want..."); any other word makes it a count of something ("10k visits", "2 mil clientes").
_BARE_AFTER = re.compile(
    r"^(?:\s*$|\s*[^\w\s]|\s+(?:and|y|e|or|o|ou|to|de|of|per|a|al|ao|por|para|pra|in|en|em"
    r"|for|with|con|com|budget|presupuesto|or[cç]amento|investment|inversi[oó]n|investimento"
    r"|monthly|mensual(?:es)?|mensais|mensal|max|m[aá]ximo|tops|more\s+or\s+less|btw|we|nos"
    r"|n[oó]s|no|na|que|is|es|[eé]|but|pero|mas|so|now|ahora|agora|hoy|hoje|ya|j[aá]|today"
    r"|total|strong|at|on|from|based|across|between|here|aqu[ií]|ac[aá]|currently|right\s+now"
    r"|actualmente|atualmente|m[aá]s\s+o\s+menos|mais\s+ou\s+menos|or\s+so|tipo|aprox\w*"
    r"|roughly|approx\w*|give\s+or\s+take|counting|contando|incl\w*|all\s+in|full|part|in-house"
    r"|remote|remotos?|working|trabajando|trabalhando|employed)\b)",
    re.IGNORECASE,
)
# "we have 50k", "tenemos unos 25 mil": with a bare amount, having is money, not a headcount.
_HAVE_BEFORE = re.compile(
    r"\b(?:we\s+have|we've\s+got|tenemos|temos|tengo|tenho)\s*(?:about|around|roughly|like"
    r"|some|~|unos|unas|uns|umas|casi|quase|cerca\s+de)?\s*$",
    re.IGNORECASE,
)
_PERCENT_AFTER = re.compile(r"^\s*(?:%|percent\b|por\s*cien(?:to)?\b)", re.IGNORECASE)
_ORDINAL_AFTER = re.compile(r"^(?:st|nd|rd|th|º|ª|o)\b", re.IGNORECASE)
_YEAR_BEFORE = re.compile(
    r"\b(?:in|by|before|until|after|en|para|antes\s+de|hasta|em|at[eé]|depois\s+de)\s*$", re.I
)
_ABOVE_BEFORE = re.compile(
    r"(?:\b(?:more\s+than|over|above|at\s+least|min(?:imum)?|upwards\s+of|m[aá]s\s+de"
    r"|m[ií]nimo|por\s+encima\s+de|mais\s+de|acima\s+de|pelo\s+menos|al\s+menos)|>=?)\s*$",
    re.IGNORECASE,
)
_BELOW_BEFORE = re.compile(
    r"(?:\b(?:less\s+than|fewer\s+than|under|below|up\s+to|max(?:imum)?|at\s+most|no\s+more"
    r"\s+than|menos\s+de|hasta|m[aá]ximo|por\s+debajo\s+de|at[eé]|abaixo\s+de)|<=?)\s*$",
    re.IGNORECASE,
)
_APPROX_BEFORE = re.compile(
    r"(?:\b(?:about|around|approx(?:\.|imately)?|roughly|circa|ca\.|like|some|close\s+to"
    r"|nearly|almost|unos|unas|alrededor\s+de|aprox(?:\.|imadamente)?|cerca\s+de|casi"
    r"|m[aá]s\s+o\s+menos|uns|umas|por\s+volta\s+de|em\s+torno\s+de|en\s+torno\s+a"
    r"|mais\s+ou\s+menos|quase|tipo|aproximadamente)|~|±)\s*$",
    re.IGNORECASE,
)
_RANGE_BETWEEN = re.compile(
    r"^\s*(?:-|–|—|to|a|hasta|or|o|ou|at[eé]|/|til|till)\s*$", re.IGNORECASE
)
_RANGE_AND = re.compile(r"^\s*(?:and|y|e|&)\s*$", re.IGNORECASE)
_RANGE_OPEN = re.compile(r"\b(?:between|entre|from|de|desde)\s*$", re.IGNORECASE)
# Money words anywhere; a period ("per month", "/mo") only right after an amount: "5k/mo" is
# money, "100 meetings/month" is not.
_BUDGET_WORDS = re.compile(
    r"\b(?:budget|presupuesto|spend|invest|investment|inversi[oó]n|pay|pagar|gastar|invertir"
    r"|or[cç]amento|investimento|investir)\b"
    r"|\d\s*(?:k|m|mil|grand|mi)?\s*(?:per\s+month|a\s+month|monthly|/\s*mo(?:nth)?|per\s+year"
    r"|a\s+year|annual(?:ly)?|al\s+mes|mensual(?:es)?|al\s+a[nñ]o|anual(?:es)?|por\s+m[eê]s"
    r"|ao\s+m[eê]s|mensais|mensal|por\s+ano|ao\s+ano|/\s*m[eê]s)\b",
    re.IGNORECASE,
)
_MONEY_WORDS = re.compile(r"\b(?:lucas?|palos?)\b", re.IGNORECASE)
_LOOKBACK = 40  # characters before a number searched for "more than", "team of", ...
# Words one of the "before" patterns needs; checked first because a set lookup is cheap.
_ABOVE_WORDS = word_set(
    "more over above least min minimum upwards mas minimo encima mais acima pelo menos"
)
_BELOW_WORDS = word_set(
    "less fewer under below up max maximum most menos hasta maximo debajo ate abaixo"
)
_APPROX_WORDS = word_set(
    "about around approx approximately roughly circa ca like some close nearly almost unos"
    " unas alrededor aprox aproximadamente cerca casi menos uns umas volta torno quase tipo"
)
_PEOPLE_BEFORE_WORDS = word_set(
    "team company staff crew org organization organisation headcount equipo empresa we re"
    " somos have tenemos employ employee employees equipe time temos funcionarios"
)


class NumberMatch(NamedTuple):
    """One number found in text. ``value`` is the midpoint when a range was given.

    A named tuple: immutable, and several times cheaper to build than a frozen dataclass
    (the interpreter builds one per number of every message)."""

    value: float
    evidence: str
    start: int
    end: int
    unit: Unit | None = None
    currency: str | None = None
    low: float | None = None
    high: float | None = None
    bound: Bound | None = None
    approximate: bool = False
    # Written the way sums of money are ("30 mil", "50k", "medio millón", "40 grand") and not
    # followed by what it counts ("10k visits"): an amount even with no currency named.
    bare_amount: bool = False
    # A plain number followed by what it counts ("100 meetings a month", "a 10 page site",
    # "3 offices"): a count of something else, never a budget by itself.
    counted: bool = False

    @property
    def is_count(self) -> bool:
        """Usable as a count or an amount (not a duration, percentage, year or ordinal)."""
        return self.unit in (None, "people", "currency")


@dataclass(slots=True)
class _Raw:
    value: float
    start: int
    end: int
    currency: str | None
    has_mult: bool
    from_words: bool
    plus: bool
    ish: bool
    big: bool  # a scale of a thousand or more: "k", "mil", "million", "thousand"


def find_numbers(text: str, language: str = "en") -> list[NumberMatch]:
    """Every number in ``text`` in order, ranges merged ("20-50k" is one match)."""
    if _SPACED_DIGITS.search(text) is not None:  # cheap test first: rarely true
        spaced = _SPACED_THOUSANDS.sub(_narrow_spaces, text)
        if spaced != text:  # same length: each match's words are the reply's own
            return [
                m._replace(evidence=text[m.start : m.end]) for m in find_numbers(spaced, language)
            ]
    low = text.lower()
    # The patterns run case-sensitively on the lower-cased text (several times faster than
    # IGNORECASE on their long alternations); spans stay valid when lower() kept the length.
    same = len(low) == len(text)
    scan = low if same else text
    digits_re, words_re = (_DIGITS_LOW, _WORDS_LOW) if same else (_DIGITS, _WORDS)
    has_words = not _NUMBER_WORDS.isdisjoint(tokens(low))
    has_digits = _HAS_DIGIT.search(text) is not None
    if not (has_words or has_digits):
        return []  # most replies: no digit, no number word
    matches = list(digits_re.finditer(scan)) if has_digits else []
    if has_words:
        taken = [(m.start(), m.end()) for m in matches]
        matches += [
            w
            for w in matches_at_words(words_re, scan, _RUN_STARTS, lower=not same)
            if not any(a < w.end() and w.start() < b for a, b in taken)  # "15 mil": one number
        ]
        matches.sort(key=lambda m: m.start())
    raws = [r for m in matches if (r := _raw(m, text, language)) is not None]
    out: list[NumberMatch] = []
    i = 0
    while i < len(raws):
        a = raws[i]
        b = raws[i + 1] if i + 1 < len(raws) else None
        if b is not None and _is_range(text, a, b):
            out.append(_range(text, a, b))
            i += 2
        else:
            out.append(_single(text, a))
            i += 1
    return out


def _narrow_spaces(m: re.Match[str]) -> str:
    return m.group(0).replace(" ", "\u202f")


def mentions_budget(text: str) -> bool:
    """Whether ``text`` talks about money to spend ("budget", "per month", "invest"...)."""
    if not ("/" in text or tokens(text.lower()) & _BUDGET_TRIGGERS):
        return False
    return _BUDGET_WORDS.search(text) is not None


_BUDGET_TRIGGERS = word_set(
    "budget presupuesto spend invest investment inversion inversión per a monthly mo month"
    " year annual annually al mensual mensuales anual anuales pay pagar gastar invertir"
    " orcamento investimento investir por ao mes mensais ano"
)


def _raw(m: re.Match[str], text: str, language: str) -> _Raw | None:
    digits = m.re is _DIGITS_LOW or m.re is _DIGITS
    mult_word = (m.group("mult") or "").lower()
    at_least = big = False
    if digits:
        value = _parse_digits(m.group("num"))
    else:
        words = m.group("words")
        if language.startswith("en") and words.lower() == "miles":
            return None  # "50 miles away": the Spanish thousands only in Spanish
        reading = words_reading(words)
        if reading is None:
            # "una luca", "un palo": the article is the count when slang scales money
            if mult_word not in MONEY_MULTS or words.lower() not in ("un", "una", "um", "uma"):
                return None
            reading = (1.0, False, False)
        value, at_least, big = reading
    mult = MULTS.get(mult_word, 1.0)
    if mult_word == "mil" and not language.startswith(("es", "pt")) and digits:
        mult = 1e6  # English slang: "$2 mil" is two million; Spanish "15 mil" is 15,000
    if mult_word in ("m", "b") and not digits:
        return None  # "twenty m" is not a thing; avoid eating a stray letter
    if m.group("half") and digits:
        value += 0.5  # "1 millón y medio", "2 million and a half"
    post = m.group("post")
    pre_m = _PRE.search(text, max(0, m.start() - 5), m.start())
    pre = pre_m.group(0) if pre_m else None
    currency = currency_code(pre) or currency_code(post)
    if currency is None and (
        mult_word in MONEY_MULTS or (not digits and _MONEY_WORDS.search(m.group("words")))
    ):
        currency = ""  # money in an unnamed currency: "50 lucas", "un par de lucas"
    return _Raw(
        value=value * mult,
        start=pre_m.start() if pre_m else m.start(),
        end=m.end(),
        currency=currency,
        has_mult=bool(mult_word),
        from_words=not digits,
        plus=bool(m.group("plus")) or at_least,
        ish=bool(m.group("ish")),
        big=big or mult >= 1e3,
    )


def _parse_digits(s: str) -> float:
    s = s.replace("\u202f", "")  # "50 000" (see _SPACED_THOUSANDS)
    seps = [c for c in s if c in ".,"]
    if not seps:
        return float(s)
    if len(seps) > 1 and len(set(seps)) == 2:
        dec = seps[-1]  # "1.234,56" / "1,234.56": the last separator is the decimal one
        thousands = "," if dec == "." else "."
        return float(s.replace(thousands, "").replace(dec, "."))
    sep = seps[0]
    groups = s.split(sep)
    if len(groups) > 2 or len(groups[-1]) == 3:
        return float(s.replace(sep, ""))  # "1,200", "1.200.000": grouping
    return float(s.replace(sep, "."))  # "1.5", "2,5": decimal


def _is_range(text: str, a: _Raw, b: _Raw) -> bool:
    between = text[a.end : b.start]
    if _RANGE_BETWEEN.match(between):
        return b.value >= a.value or (not a.has_mult and b.has_mult)
    if _RANGE_AND.match(between):
        return _RANGE_OPEN.search(text, max(0, a.start - 12), a.start) is not None
    return False


def _range(text: str, a: _Raw, b: _Raw) -> NumberMatch:
    low = a.value
    # "10-20k", "$10–20k": the multiplier and currency written once apply to both ends.
    if b.has_mult and not a.has_mult and a.value < b.value:
        scale = b.value / _unscaled(text, b)
        low = a.value * scale
    high = b.value
    low, high = min(low, high), max(low, high)
    start = a.start
    opener = _RANGE_OPEN.search(text, max(0, a.start - 12), a.start)
    if opener:
        start = opener.start()
    currency = a.currency or b.currency
    if currency is None and "" in (a.currency, b.currency):
        currency = ""  # "2 a 3 lucas": money, currency unnamed
    return _finish(
        text, start, b.end, (low + high) / 2, currency, low=low, high=high, big=a.big or b.big
    )


def _unscaled(text: str, r: _Raw) -> float:
    m = _DIGITS.search(text, r.start)
    if m:
        v = _parse_digits(m.group("num"))
        return v if v else 1.0
    return r.value or 1.0


def _single(text: str, r: _Raw) -> NumberMatch:
    before = text[max(0, r.start - _LOOKBACK) : r.start]
    # Most numbers have no qualifier: a set lookup spares three regex scans.
    words = tokens(fold(before)) if before else frozenset()
    marks = ">" in before or "<" in before or "~" in before or "±" in before
    bound: Bound | None = None
    # "200-odd", "doscientos y pico": only after a space or a hyphen
    next_char = text[r.end : r.end + 1]
    more = _MORE_AFTER.match(text[r.end : r.end + 30]) if next_char in (" ", "-") else None
    if r.plus or more or ((marks or words & _ABOVE_WORDS) and _ABOVE_BEFORE.search(before)):
        bound = "above"
    elif (marks or words & _BELOW_WORDS) and _BELOW_BEFORE.search(before):
        bound = "below"
    approx = (
        r.ish
        or bool(more)
        or bool((marks or words & _APPROX_WORDS) and _APPROX_BEFORE.search(before))
    )
    return _finish(
        text, r.start, r.end, r.value, r.currency, bound=bound, approximate=approx, big=r.big
    )


def _finish(
    text: str,
    start: int,
    end: int,
    value: float,
    currency: str | None,
    *,
    low: float | None = None,
    high: float | None = None,
    bound: Bound | None = None,
    approximate: bool = False,
    big: bool = False,
) -> NumberMatch:
    after = text[end : end + 40]
    before = text[max(0, start - _LOOKBACK) : start]
    unit: Unit | None
    # Every unit written after a number starts with a letter, "%" or "-" (most answers are
    # the number alone: "50k", "40"), so the patterns for them are tried only then.
    lead = after.lstrip()[:1]
    worded = lead.isalpha() or lead in ("%", "-")
    figures = _FIGURES_AFTER.match(after) if worded else None
    if figures is not None and 3 <= (low if low is not None else value) <= 9:
        value = 10.0 ** (int(low if low is not None else value) - 1)
        # "high four figures" is 7-9k, not 1k: the least such an amount is would deflect it.
        level = _FIGURES_LEVEL.search(before) or _FIGURES_LEVEL_AFTER.match(after[figures.end() :])
        if level is not None:
            value *= _LEVELS[fold(level.group("level"))]
        low = high = None
        currency, approximate, end = currency or "", True, end + figures.end()
    if currency is not None:
        unit = "currency"
    elif worded and _TIME_AFTER.match(after):
        unit = "time"
    elif worded and _PERCENT_AFTER.match(after):
        unit = "percent"
    elif worded and _ORDINAL_AFTER.match(after):
        unit = "ordinal"
    elif worded and (m := _PEOPLE.match(after)) is not None:
        unit = "people"
        end += m.end()
    elif tokens(fold(before)) & _PEOPLE_BEFORE_WORDS and _PEOPLE_BEFORE.search(before):
        # "we're 40", "somos 25 e...": a headcount, unless a noun says what is counted ("we
        # have 3 offices") or it is a sum written like money that is had ("tenemos 25 mil").
        bare = _BARE_AFTER.match(after) is not None
        unit = "people" if bare and not (big and _HAVE_BEFORE.search(before)) else None
    elif 1900 <= value <= 2100 and value.is_integer() and _YEAR_BEFORE.search(before):
        unit = "year"
    else:
        unit = None
    evidence = text[start:end].strip()
    bare = _BARE_AFTER.match(after) is not None
    return NumberMatch(
        value=value,
        evidence=evidence,
        start=start,
        end=end,
        unit=unit,
        currency=currency or None,
        low=low,
        high=high,
        bound=bound,
        approximate=approximate,
        bare_amount=big and unit in (None, "currency") and bare,
        counted=unit is None and not bare and not big,  # "120k annually" is still money
    )
