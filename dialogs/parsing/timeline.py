"""When does the prospect want to start? A horizon in days from ``now``.

Reads folded text (see :func:`dialogs.parsing.normalize.fold`): "asap", "yesterday",
"next week", "next month", "by March", "Q3", "end of year", "in 2 months", "no rush",
"not sure", and their Spanish and Portuguese equivalents ("lo antes posible", "el mes que
viene", "no sé", "o quanto antes", "mês que vem", "para março", "não sei").

Conventions, so buckets are predictable: a relative period ("next month", "this quarter",
"next year") means its *end*; a named period ("March", "Q3", "2026") its *start*, the
deadline reading of "by March"; "end of …" is the last day. Past months roll to next year.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime, timedelta
from typing import Literal, NamedTuple

from dialogs.parsing.intents import UNKNOWN_ANSWER
from dialogs.parsing.normalize import tokens
from dialogs.parsing.timeline_words import (
    AMBIGUOUS_MONTHS,
    ASAP_WORDS,
    COUNT_WORDS,
    EO_WORDS,
    HALF_WORDS,
    LATER_WORDS,
    MONTH_WORDS,
    MONTHS,
    PERIOD_WORDS,
    QUARTER_WORDS,
    SOON_WORDS,
    TRIGGERS,
    UNIT_DAYS,
    UNIT_WORDS,
    WEEKDAY_WORDS,
    WEEKDAYS,
)

Kind = Literal["date", "later", "unknown"]


class TimelineMatch(NamedTuple):
    """A parsed timeline. ``days`` is set for kind "date"; ``strong`` is False for bare
    words ("now", "soon", "march") that are only trusted when the timeline question is open.
    A named tuple: immutable and cheap to build on the interpreter's hot path."""

    kind: Kind
    days: int | None
    evidence: str
    start: int
    end: int
    strong: bool = True


_P = r"(?<![\w])"  # start-of-word that also works before punctuation like "a.s.a.p"
_LATER = re.compile(
    rf"{_P}(?:no\s+(?:big\s+|real\s+)?(?:rush|hurry|urgency|deadline)|not\s+in\s+a\s+(?:big\s+)?"
    r"(?:rush|hurry)|some\s*day|eventually|no\s+hard\s+deadline|whenever"
    r"|(?:no|nao)\s+(?:(?:hay|ha|tengo|tenho|tenemos|temos|tem|tiene|corre)\s+)?(?:(?:mucha|muita"
    r"|tanta|ninguna|nenhuma)\s+)?(?:prisas?|pressa|apuro|urgencia)|(?:sin|sem|ninguna|nenhuma)"
    r"\s+(?:(?:mucha|muita|ninguna|nenhuma)\s+)?(?:prisas?|pressa|apuro|urgencia)"
    r"|nada\s+urgente"
    r"|just\s+(?:looking|browsing|exploring|researching|curious)|exploring|long[\s-]term"
    r"|not\s+(?:any\s*time\s+)?soon|not\s+(?:right\s+)?now|not\s+yet|later\s+on|later"
    r"|at\s+some\s+point|in\s+the\s+future|mas\s+adelante|algun\s+dia|solo\s+(?:mirando|explorando|curioseando)|a\s+futuro"
    r"|ahora\s+no|todavia\s+no|aun\s+no|a\s+largo\s+plazo|mas\s+tarde|no\s+es\s+urgente"
    r"|not\s+urgent|mais\s+(?:pra|para)\s+frente|mais\s+adiante|algum\s+dia|futuramente|no\s+futuro"
    r"|(?:so|apenas|solo)\s+(?:estamos\s+|estou\s+|estoy\s+)?(?:olhando|pesquisando|pesquisa"
    r"|cotando|mirando|explorando|viendo)|agora\s+nao"
    r"|por\s+enquanto\s+nao|(?:a|de)\s+longo\s+prazo|mais\s+tarde|nao\s+e\s+urgente)\b"
)
# "Not yet", "later", "todavía no": a timeline only as the answer to the timeline question
# ("todavía no lo hemos definido" to the budget question says nothing about when).
_LATER_WEAK = re.compile(
    r"(?:not\s+(?:right\s+)?now|not\s+yet|later(?:\s+on)?|whenever|ahora\s+no|todavia\s+no"
    r"|aun\s+no|mas\s+tarde|agora\s+nao|por\s+enquanto\s+nao|mais\s+tarde)$"
)
_ASAP_STRONG = re.compile(
    rf"{_P}(?:asap|a\.s\.a\.p\.?|as\s+soon\s+as\s+possible|right\s+away|right\s+now|immediately"
    r"|urgent(?:ly)?|yesterday|lo\s+antes\s+posible|cuanto\s+antes|lo\s+mas\s+pronto\s+posible"
    r"|ya\s+mismo|urgente|urge|inmediatamente|de\s+inmediato|ahora\s+mismo|para\s+ayer|enseguida"
    r"|this\s+week|esta\s+semana|start\s+now|empezar\s+ya|cuanto\s+mas\s+pronto\s+mejor"
    r"|the\s+sooner\s+the\s+better|o\s+quanto\s+antes|quanto\s+antes|o\s+mais\s+(?:rapido"
    r"|breve|cedo)\s+possivel|imediatamente|de\s+imediato|agora\s+mesmo|(?:pra|para)\s+ontem"
    r"|com\s+urgencia|(?:esta|essa|nesta|nessa)\s+(?:misma\s+|mesma\s+)?semana|comecar\s+ja"
    r"|ja\s+ja|quanto\s+mais\s+rapido\s+melhor|this\s+(?:very|same)\s+week|as\s+soon\s+as\s+"
    r"(?:you|we|they|u)\s+(?:guys\s+)?can|as\s+soon\s+as\s+(?:feasible|practical)"
    r"|cuando\s+antes|en\s+cuanto\s+(?:pued\w+|podais|podamos|se\s+pueda|sea\s+posible)"
    r"|(?:lo\s+)?(?:mas\s+)?(?:antes|pronto|rapido)\s+(?:posible|que\s+(?:se\s+)?pued\w+"
    r"|que\s+podais)"
    r"|assim\s+que\s+(?:possivel|der|puder(?:em)?|for\s+possivel)|o\s+(?:mais\s+)?(?:rapido"
    r"|breve|cedo)\s+que\s+(?:der|puder(?:em)?)|urgenti?ssim[oa]|urgentisim[oa]"
    r"|(?:hoy|hoje|manana|amanha)\s+mismo|(?:hoje|amanha)\s+mesmo"
    r"|(?:need|want|start|get\s+started|begin|launch|kick\s+off)\s+(?:it|this|them|things)?\s*"
    r"(?:now|today)|(?:necesit|quier|quer|empez|arranc|comenz|inici|precis|comec)\w*\s+"
    r"(?:(?:esto|eso|isso|disso)\s+)?(?:ya|ahora|hoy|ja|agora|hoje))(?!\w)"
)
_ASAP_WEAK = re.compile(r"\b(?:now|today|hoy|ya|ahora|tomorrow|ayer|asap+|agora|hoje|ja)\b")
_SOON_WEAK = re.compile(
    r"\b(?:soon|pronto|shortly|en\s+breve|em\s+breve|logo|daqui\s+a\s+pouco|dentro\s+de\s+poco"
    r"|en\s+poco\s+tiempo|em\s+pouco\s+tempo|in\s+a\s+(?:little\s+)?(?:bit|while))\b"
)
_NEXT = re.compile(
    r"\b(?:(?:the\s+)?(?:next|following|coming)\s+(?P<u1>week|month|quarter|year)"
    r"|(?:(?:el|la|o|a)\s+)?(?:proxim[oa]|siguiente|seguinte)\s+(?P<u2>semana|mes|trimestre|ano)"
    r"|(?:(?:el|la|o|a)\s+)?(?P<u3>semana|mes|trimestre|ano)\s+(?:q(?:ue)?\s+(?:viene|vem)"
    r"|proxim[oa]|siguiente|seguinte))\b"
)
_THIS = re.compile(
    r"\b(?:(?:this|current|by\s+the\s+end\s+of\s+(?:the|this))\s+(?P<u1>month|quarter|year)"
    r"|(?:est[ea]|ess[ea]|nest[ea]|ness[ea]|el\s+presente)\s+(?P<u2>mes|trimestre|ano)"
    r"|(?:end\s+of\s+(?:the\s+)?|fin(?:al)?(?:es)?\s+de(?:l)?\s+|finales\s+de(?:l)?\s+"
    r"|(?:fim|final)\s+d[oe]\s+|eo)"
    r"(?P<u3>month|quarter|year|y|mes|trimestre|ano|q)(?![\w]))"
)
_RELATIVE = re.compile(
    r"\b(?P<prep>in|within|inside|over\s+the\s+next|next|en|dentro\s+de|durante\s+los"
    r"|en\s+los\s+proximos|los\s+proximos|proximos|em|daqui\s+a|nos\s+proximos|dentro\s+de"
    r"|de\s+aqui\s+a|de\s+aca\s+a|daqui"
    r"|em\s+(?:ate|uns|umas))?\s*"
    r"(?P<n>\d{1,3}|a\s+couple\s+of|a\s+couple|couple\s+of|a\s+few|un\s+par\s+de|par\s+de"
    r"|um\s+par\s+de|unos\s+pocos|unos\s+dos|unos\s+tres|uns\s+dois|uns\s+tres|unos|unas"
    r"|uns|umas|alguns|algumas|several|varios|an?|one|two|three|four|five|six|eight|nine|ten"
    r"|twelve|un|una|um|uma|dos|dois|duas|tres|cuatro|quatro|cinco|seis|ocho|oito|nueve|nove"
    r"|diez|dez|doce|doze|few)\s*"
    r"(?:-\s*|to\s+|a\s+|ou\s+|o\s+)?(?:(?P<n2>\d{1,3})\s*)?"
    r"(?P<unit>days?|dias?|weeks?|wks?|semanas?|months?|mos|meses|mes|quarters?|trimestres?"
    r"|years?|yrs?|anos?)\b"
)
_QUARTER = re.compile(
    r"\b(?P<end>end\s+of\s+|fin(?:al)?\s+del?\s+|by\s+the\s+end\s+of\s+|(?:fim|final)\s+do\s+)?"
    r"(?:q(?P<q>[1-4])|(?P<qw>first|second|third|fourth|primer|segundo|tercer|cuarto|primeiro"
    r"|terceiro|quarto)\s+(?:quarter|trimestre)|(?P<qn>[1-4])\s*(?:o|er|ro|do|to|st|nd|rd|th)?"
    r"\s*(?:quarter|trimestre)|(?P<qt>[1-4])t)(?:\s*(?:of\s+|de\s+|del\s+)?(?P<year>20\d\d))?\b"
)
_HALF = re.compile(
    r"\b(?:h2|second\s+half|segundo\s+semestre|2nd\s+half"
    r"|(?P<h1>h1|first\s+half|1st\s+half|primer\s+semestre|primeiro\s+semestre))\b"
)
# The middle of this year: "mid-year", "a mediados de año", "meados do ano", "meio do ano".
_MID_YEAR = re.compile(
    r"\b(?:mid[\s-]?year|(?:the\s+)?middle\s+of\s+(?:the\s+|this\s+)?year|(?:a\s+)?(?:mediados"
    r"|mitad)\s+del?\s+(?:este\s+)?ano|(?:em\s+|no\s+|na\s+)?(?:meados|meio|metade)\s+d[oe]\s+"
    r"(?:este\s+|esse\s+)?ano)\b(?!\s+(?:que|q|proximo|siguiente|seguinte|next))"
)
_NEXT_YEAR_PART = re.compile(
    r"\b(?:(?:early|beginning\s+of|start\s+of|principios\s+de(?:l)?|inicios\s+de(?:l)?"
    r"|inicio\s+d[oe]|comeco\s+d[oe])\s+(?:next\s+year|(?:el\s+|o\s+)?ano\s+q(?:ue)?\s+(?:viene|vem)"
    r"|(?:el\s+|o\s+)?proximo\s+ano))\b"
)
_PREPS = (
    r"by|in|before|until|till|til|for|around|end\s+of|mid|early|late|beginning\s+of|start\s+of"
    r"|by\s+the\s+end\s+of|en|para|antes\s+de|hasta|a\s+finales\s+de|a\s+principios\s+de"
    r"|finales\s+de|principios\s+de|mediados\s+de|a\s+mediados\s+de|fin\s+de|el|del"
    r"|em|ate|pra|no\s+fim\s+de|fim\s+de|final\s+de|no\s+final\s+de|inicio\s+de|comeco\s+de"
    r"|meados\s+de|em\s+meados\s+de|a\s+partir\s+de|desde|depois\s+de|despues\s+de"
)
_MONTH_RE = re.compile(
    rf"(?:\b(?P<prep>{_PREPS})\s+)?(?:(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+|de\s+)?)?"
    rf"\b(?P<month>{'|'.join(sorted(MONTHS, key=len, reverse=True))})\.?(?!\w)"
    r"(?:\s+(?P<day2>\d{1,2})(?:st|nd|rd|th)?\b)?(?:,?\s*(?P<year>20\d\d)\b)?"
)
_WEEKDAY_RE = re.compile(
    rf"\b(?:by|on|this|next|until|before|el|para\s+el|antes\s+del?|hasta\s+el|na|ate|ate\s+a"
    r"|nesta|pra|proxima)\s+"
    rf"(?P<wd>{'|'.join(WEEKDAYS)})\b"
)
_YEAR_RE = re.compile(r"\b(?:in|by|for|during|en|para|durante|em|ate)\s+(?P<year>20\d\d)\b")
_TOMORROW = re.compile(r"\b(?:tomorrow|manana|amanha)\b")
# "15/03", "15/3/2025", "03/15" (day first unless that is impossible): a start date.
_DATE_PREP = re.compile(
    r"\b(?:by|on|from|starting|until|before|para|pra|el|en|em|ate|hasta|desde|dia|day|a\s+partir"
    r"\s+d[eo]l?|antes\s+del?|no\s+dia|el\s+dia)\s*$"
)
_DATE = re.compile(r"(?<![\d/])(?P<a>\d{1,2})/(?P<b>\d{1,2})(?:/(?P<y>(?:20)?\d\d))?(?![\d/])")


def parse_timeline(folded: str, now: datetime) -> TimelineMatch | None:
    """The timeline in ``folded`` text as of ``now``, or None if it names none.

    Concrete dates beat "no rush", which beats "not sure": "not sure, maybe March" is March.
    """
    words = tokens(folded)
    if not (words & TRIGGERS or "a.s.a.p" in folded or any(w.isdigit() for w in words)):
        m = UNKNOWN_ANSWER.search(folded)
        return TimelineMatch("unknown", None, m.group(0), m.start(), m.end()) if m else None
    today = now.date()
    later = _LATER.search(folded) if words & LATER_WORDS else None
    found = _concrete(folded, today, words)
    if found is not None:
        # "not right now" contains "right now": the negation wins.
        if later is not None and later.start() <= found.start < later.end():
            return TimelineMatch("later", None, later.group(0), later.start(), later.end())
        return found
    unknown = UNKNOWN_ANSWER.search(folded)
    if (
        later is not None
        and unknown is not None
        and later.start() < unknown.end()
        and unknown.start() < later.end()
    ):
        later = None  # "todavía no lo sé" is "I don't know yet", not "not yet"
    found = _later_or_soon(folded, later, words)
    if found is not None:
        return found
    if unknown:
        return TimelineMatch("unknown", None, unknown.group(0), unknown.start(), unknown.end())
    return None


def _concrete(s: str, today: date, words: frozenset[str]) -> TimelineMatch | None:
    # Each pattern runs only if a word it needs is present: most replies have none.
    if (words & ASAP_WORDS or "a.s.a.p" in s) and (m := _ASAP_STRONG.search(s)) is not None:
        return _at(m, 0)
    if words & QUARTER_WORDS and (m := _QUARTER.search(s)) is not None:
        return _at(m, _quarter_days(m, today))
    period = words & PERIOD_WORDS
    if period and (m := _NEXT_YEAR_PART.search(s)) is not None:
        return _at(m, (date(today.year + 1, 1, 1) - today).days)
    if (period or words & EO_WORDS) and (m := _THIS.search(s)) is not None:
        unit = m.group("u1") or m.group("u2") or m.group("u3")
        return _at(m, (_period_end(today, unit, 0) - today).days)
    if period and (m := _NEXT.search(s)) is not None:
        unit = m.group("u1") or m.group("u2") or m.group("u3")
        return _at(m, (_period_end(today, unit, 1) - today).days)
    if (
        words & UNIT_WORDS
        and (m := _RELATIVE.search(s)) is not None
        and (days := _relative_days(m)) is not None
    ):
        return _at(m, days, strong=bool(m.group("prep")))
    if words & HALF_WORDS and (m := _HALF.search(s) or _MID_YEAR.search(s)) is not None:
        if "h1" in m.re.groupindex and m.group("h1"):  # a named half: its start
            return _at(m, 0 if today.month <= 6 else (date(today.year + 1, 1, 1) - today).days)
        target = date(today.year, 7, 1)
        return _at(m, max(0, (target - today).days))
    if words & WEEKDAY_WORDS and (m := _WEEKDAY_RE.search(s)) is not None:
        ahead = (WEEKDAYS[m.group("wd")] - today.weekday()) % 7 or 7
        return _at(m, ahead)
    if words & MONTH_WORDS:
        for m in _MONTH_RE.finditer(s):
            days = _month_days(m, today)
            if days is not None:
                strong = bool(m.group("prep") or m.group("day") or m.group("day2"))
                return _at(m, days, strong=strong)
    if (m := _YEAR_RE.search(s)) is not None:
        year = int(m.group("year"))
        if year == today.year:
            return _at(m, (date(year, 12, 31) - today).days)
        if year > today.year:
            return _at(m, (date(year, 1, 1) - today).days)
    if (
        "/" in s
        and (m := _DATE.search(s)) is not None
        and (days := _date_days(m, today)) is not None
    ):
        # "15/03" alone may be a ratio or "24/7"; with "by"/"para"/a year it is a date.
        strong = bool(m.group("y") or _DATE_PREP.search(s, max(0, m.start() - 20), m.start()))
        return _at(m, days, strong=strong)
    if words & {"tomorrow", "manana", "amanha"} and (m := _TOMORROW.search(s)) is not None:
        return _at(m, 1, strong=False)
    return None


def _later_or_soon(
    s: str, later: re.Match[str] | None, words: frozenset[str]
) -> TimelineMatch | None:
    if later is not None:
        strong = _LATER_WEAK.match(later.group(0)) is None
        return TimelineMatch("later", None, later.group(0), later.start(), later.end(), strong)
    if words & ASAP_WORDS and (m := _ASAP_WEAK.search(s)) is not None:
        return _at(m, 0, strong=False)
    if words & SOON_WORDS and (m := _SOON_WEAK.search(s)) is not None:
        return _at(m, 45, strong=False)  # "soon": within a couple of months
    return None


def _at(m: re.Match[str], days: int, *, strong: bool = True) -> TimelineMatch:
    return TimelineMatch("date", max(0, days), m.group(0).strip(), m.start(), m.end(), strong)


def _period_end(today: date, unit: str, ahead: int) -> date:
    if unit in ("week", "semana"):
        return today + timedelta(days=(6 - today.weekday()) + 7 * ahead)
    if unit in ("month", "mes"):
        y, mth = divmod(today.month - 1 + ahead, 12)
        year, month = today.year + y, mth + 1
        return date(year, month, calendar.monthrange(year, month)[1])
    if unit in ("quarter", "trimestre", "q"):
        q = (today.month - 1) // 3 + ahead
        y, q = divmod(q, 4)
        year, last_month = today.year + y, q * 3 + 3
        return date(year, last_month, calendar.monthrange(year, last_month)[1])
    return date(today.year + ahead, 12, 31)  # year / ano / "eoy"


def _relative_days(m: re.Match[str]) -> int | None:
    raw = re.sub(r"\s+", " ", m.group("n"))
    n = int(raw) if raw.isdigit() else COUNT_WORDS.get(raw)
    if n is None:
        return None
    if m.group("n2"):
        n = int(m.group("n2"))  # "2-3 months": plan for the later end
    unit = m.group("unit").rstrip("s") if m.group("unit") not in ("mes", "meses") else "mes"
    unit = {"dia": "dia", "ano": "ano", "mo": "mo", "wk": "wk"}.get(unit, unit)
    per = UNIT_DAYS.get(unit)
    if per is None:
        return None
    if not m.group("prep") and raw in ("a", "an", "un", "una"):
        return None  # "a month" alone is as likely "per month" as a timeline
    return min(n * per, 3650)


def _date_days(m: re.Match[str], today: date) -> int | None:
    """Days to a typed date: day first ("15/03", as Europe and Latin America write it), month
    first only when day first is impossible ("03/15"); a past date without a year rolls on."""
    a, b = int(m.group("a")), int(m.group("b"))
    if (a, b) == (24, 7):
        return None  # "24/7 support"
    day, month = (a, b) if 1 <= b <= 12 else (b, a)
    if not 1 <= month <= 12 or not 1 <= day <= 31:
        return None
    y = m.group("y")
    year = (2000 + int(y) if len(y) == 2 else int(y)) if y else today.year
    day = min(day, calendar.monthrange(year, month)[1])
    target = date(year, month, day)
    if target < today and not y:
        target = date(year + 1, month, min(day, calendar.monthrange(year + 1, month)[1]))
    return (target - today).days if target >= today else None


def _quarter_days(m: re.Match[str], today: date) -> int:
    words = {
        "first": 1,
        "primer": 1,
        "primeiro": 1,
        "second": 2,
        "segundo": 2,
        "third": 3,
        "tercer": 3,
        "terceiro": 3,
    }
    if m.group("q") or m.group("qn") or m.group("qt"):
        q = int(m.group("q") or m.group("qn") or m.group("qt"))
    else:
        q = words.get(m.group("qw"), 4)
    year = int(m.group("year")) if m.group("year") else today.year
    current_q = (today.month - 1) // 3 + 1
    if not m.group("year") and q < current_q:
        year += 1
    if m.group("end"):
        last_month = q * 3
        target = date(year, last_month, calendar.monthrange(year, last_month)[1])
    else:
        target = date(year, q * 3 - 2, 1)
    return max(0, (target - today).days)


def _month_days(m: re.Match[str], today: date) -> int | None:
    word = m.group("month")
    prep = m.group("prep") or ""
    day_s = m.group("day") or m.group("day2")
    if word in AMBIGUOUS_MONTHS and not (prep and prep not in ("el", "del")) and not day_s:
        return None
    month = MONTHS[word]
    year = int(m.group("year")) if m.group("year") else today.year
    if not m.group("year") and (
        month < today.month or (month == today.month and day_s and int(day_s) < today.day)
    ):
        year += 1
    last = calendar.monthrange(year, month)[1]
    if day_s:
        day = min(max(int(day_s), 1), last)
    elif re.match(r"(?:by\s+the\s+)?end|late|a\s+finales|finales|fin", prep):
        day = last
    elif prep.startswith(("mid", "mediados", "a mediados")):
        day = 15
    else:
        day = 1
    return max(0, (date(year, month, day) - today).days)
