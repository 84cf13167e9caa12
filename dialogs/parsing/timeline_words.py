"""Words the timeline parser knows (folded: lower-case, no accents): English, Spanish and
Portuguese.

Kept apart from the patterns so the vocabulary is easy to extend. The ``*_WORDS`` sets gate the
parser's regexes: a pattern only runs when one of its words is in the message.
"""

from __future__ import annotations

from dialogs.parsing.normalize import word_set

MONTHS: dict[str, int] = {
    "january": 1,
    "jan": 1,
    "enero": 1,
    "february": 2,
    "feb": 2,
    "febrero": 2,
    "march": 3,
    "mar": 3,
    "marzo": 3,
    "april": 4,
    "apr": 4,
    "abril": 4,
    "may": 5,
    "mayo": 5,
    "june": 6,
    "jun": 6,
    "junio": 6,
    "july": 7,
    "jul": 7,
    "julio": 7,
    "august": 8,
    "aug": 8,
    "agosto": 8,
    "september": 9,
    "sept": 9,
    "sep": 9,
    "septiembre": 9,
    "setiembre": 9,
    "october": 10,
    "oct": 10,
    "octubre": 10,
    "november": 11,
    "nov": 11,
    "noviembre": 11,
    "december": 12,
    "dec": 12,
    "diciembre": 12,
    # Portuguese (folded: "março" is "marco"); "abril", "agosto" are shared with Spanish
    "janeiro": 1,
    "fevereiro": 2,
    "marco": 3,
    "maio": 5,
    "junho": 6,
    "julho": 7,
    "setembro": 9,
    "outubro": 10,
    "novembro": 11,
    "dezembro": 12,
}
# Seasons as the month they start (northern hemisphere: most of our prospects' reading).
SEASONS: dict[str, int] = {
    "spring": 3,
    "primavera": 3,
    "summer": 6,
    "verano": 6,
    "fall": 9,
    "autumn": 9,
    "otono": 9,
    "winter": 12,
    "invierno": 12,
    "verao": 6,
    "outono": 9,
    "inverno": 12,
    # Christmas, as the month it falls in ("before christmas", "para navidad", "até o natal")
    "christmas": 12,
    "xmas": 12,
    "navidad": 12,
    "natal": 12,
}
MONTHS.update(SEASONS)
# Month words that are also ordinary words; read as months only next to a preposition or day.
AMBIGUOUS_MONTHS = {
    "mar",
    "may",
    "jun",
    "jul",
    "sep",
    "dec",
    "jan",
    "apr",
    "aug",
    "oct",
    "nov",
    "fall",
}
WEEKDAYS: dict[str, int] = {
    "monday": 0,
    "lunes": 0,
    "tuesday": 1,
    "martes": 1,
    "wednesday": 2,
    "miercoles": 2,
    "thursday": 3,
    "jueves": 3,
    "friday": 4,
    "viernes": 4,
    "saturday": 5,
    "sabado": 5,
    "sunday": 6,
    "domingo": 6,
    "segunda": 0,
    "terca": 1,
    "quarta": 2,
    "quinta": 3,
    "sexta": 4,
}
UNIT_DAYS = {
    "day": 1,
    "dia": 1,
    "week": 7,
    "wk": 7,
    "semana": 7,
    "month": 30,
    "mo": 30,
    "mes": 30,
    "quarter": 91,
    "trimestre": 91,
    "year": 365,
    "yr": 365,
    "ano": 365,
}
COUNT_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "un": 1,
    "una": 1,
    "couple": 2,
    "couple of": 2,
    "a couple": 2,
    "a couple of": 2,
    "par de": 2,
    "un par de": 2,
    "two": 2,
    "dos": 2,
    "three": 3,
    "tres": 3,
    "few": 3,
    "a few": 3,
    "unos": 3,
    "unas": 3,
    "unos pocos": 3,
    "four": 4,
    "cuatro": 4,
    "five": 5,
    "cinco": 5,
    "six": 6,
    "seis": 6,
    "eight": 8,
    "ocho": 8,
    "nine": 9,
    "nueve": 9,
    "ten": 10,
    "diez": 10,
    "twelve": 12,
    "doce": 12,
    "several": 4,
    "varios": 4,
    "um": 1,
    "uma": 1,
    "dois": 2,
    "duas": 2,
    "quatro": 4,
    "oito": 8,
    "nove": 9,
    "dez": 10,
    "doze": 12,
    "uns": 3,
    "umas": 3,
    "alguns": 3,
    "algumas": 3,
    "um par de": 2,
    "uns dois": 2,
    "uns tres": 3,
    "unos dos": 2,
    "unos tres": 3,
}

# Trigger words per pattern (folded). A pattern is only tried when one of its words is present.
ASAP_WORDS = word_set(
    "asap asapp asappp as right immediately urgent urgently yesterday antes cuanto pronto ya"
    " urgente urge inmediatamente inmediato ahora ayer enseguida this esta start empezar sooner"
    " now today hoy tomorrow mas quanto rapido breve imediatamente imediato ja agora ontem"
    " urgencia essa nesta nessa hoje comecar logo manana amanha assim cedo urgentisimo"
    " urgentissimo urgentisima urgentissima"
)
QUARTER_WORDS = word_set(
    "q1 q2 q3 q4 first second third fourth primer segundo tercer cuarto primeiro terceiro quarto"
    " trimestre 1o 2o 3o 4o 1er 1st 2nd 3rd 4th 1t 2t 3t 4t"
)
PERIOD_WORDS = word_set(
    "week month quarter year semana mes trimestre ano next following coming proximo proxima"
    " siguiente viene vem semestre"
)
EO_WORDS = word_set("eoy eom eoq end fin final finales fim")
UNIT_WORDS = word_set(
    "day days dia dias week weeks wk wks semana semanas month months mos meses mes quarter"
    " quarters trimestre trimestres year years yr yrs ano anos"
)
HALF_WORDS = word_set("h1 h2 half semestre mid midyear middle mediados mitad meados meio metade")
WEEKDAY_WORDS = frozenset(WEEKDAYS)
MONTH_WORDS = frozenset(MONTHS)
SOON_WORDS = word_set("soon pronto shortly breve logo pouco poco bit while")
LATER_WORDS = word_set(
    "rush hurry someday some eventually just exploring long term soon now yet later point"
    " future adelante prisa algun solo futuro ahora todavia aun largo tarde urgente urgent"
    " day pressa frente adiante urgencia futuramente enquanto olhando pesquisando prazo nao"
    " agora ainda urgency deadline whenever prisas apuro"
)
TRIGGERS = (
    ASAP_WORDS
    | QUARTER_WORDS
    | PERIOD_WORDS
    | EO_WORDS
    | UNIT_WORDS
    | HALF_WORDS
    | WEEKDAY_WORDS
    | MONTH_WORDS
    | SOON_WORDS
    | LATER_WORDS
    | {"manana", "tomorrow", "amanha"}
)
