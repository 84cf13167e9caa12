"""The rules interpreter: deterministic, fast, always available.

It fills the open question's slot first, then every other unfilled slot the message clearly
gives ("we're 40 people and need it by March" fills company_size and timeline). Outside the
open question it only trusts unambiguous signals: a count with a people unit for a size, a
currency amount for a budget, a dated time expression for a timeline, an option named by its
own words for a choice. The dialog engine calls :meth:`RulesInterpreter.interpret_now` inline,
so per-script tables are compiled once and cached.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from dialogs.interpretation import Intent, Interpretation, SlotValue
from dialogs.parsing import intents
from dialogs.parsing.choice import ChoiceTable
from dialogs.parsing.emails import find_email
from dialogs.parsing.normalize import first_words, fold, matches_at_words, normalize, tokens
from dialogs.parsing.numbers import NumberMatch, find_numbers, mentions_budget
from dialogs.parsing.timeline import TimelineMatch, parse_timeline
from dialogs.script import AnswerKind, Option

if TYPE_CHECKING:
    from dialogs.script import Question, Script
    from dialogs.session import Session

RULES_MAX_CHARS = 1000  # rules read at most this much; a real answer is far shorter
_CACHE_SIZE = 32
_NO_BUDGET = re.compile(
    r"\b(?:no|zero|sin|sem|not\s+a|(?:do\s*n'?t|haven'?t|have\s+not|didn'?t|not)\s+(?:have|got"
    r"|set|defined|decided(?:\s+on)?|allocated|approved|agreed(?:\s+on)?)(?:\s+(?:a|any|the|our))?"
    r"|no\s+(?:tenemos|tengo|hay|hemos\s+(?:definido|fijado|decidido|puesto))(?:\s+(?:un|ningun"
    r"|el|todavia|aun))?|nao\s+(?:temos|tenho|tem|ha|definimos|fechamos|decidimos)(?:\s+(?:um"
    r"|nenhum|o|ainda))?)\s+(?:budget|presupuesto|orcamento|valor|verba|monto|cifra)\b"
)
# A budget question answered with nothing at all ("nothing", "no money yet", "nada por
# ahora", "zero"): an amount of 0, not an "I don't know" (the whole reply, so "nothing
# fancy, 50k" stays 50k; "we haven't set a budget" stays undecided, see _NO_BUDGET).
_ZERO_BUDGET = re.compile(
    r"^\W*(?:(?:honestly|tbh|well|um+|hmm+|sadly|la\s+verdad|sinceramente|pues)\W+)?"
    r"(?:nothing|nada|zero|cero|zilch|nil|none|no\s+money|sin\s+(?:dinero|plata)"
    r"|sem\s+(?:dinheiro|grana)|(?:no\s+budget|sin\s+presupuesto|sem\s+(?:verba|orcamento))"
    r"(?!\W+(?:yet|todavia|aun|ainda))|(?:we|i)\s+have\s+(?:nothing|no\s+money)"
    r"|(?:no|todavia\s+no|aun\s+no)\s+(?:tenemos|tengo)\s+(?:dinero|plata)"
    r"|(?:nao|ainda\s+nao)\s+(?:temos|tenho)\s+(?:dinheiro|grana|verba))"
    r"(?:\W+(?:really|honestly|tbh|at\s+all|yet|for\s+now|right\s+now|atm|sorry|lol"
    r"|por\s+ahora|de\s+momento|por\s+el\s+momento|todavia|aun|la\s+verdad|por\s+enquanto"
    r"|ainda|no\s+momento|sinceramente))*\W*$"
)
# Between two words of an FAQ phrase, a pronoun or filler may stand: "onde ficam" matches
# "onde vocês ficam", "where are you based" matches "where are you guys based".
_FAQ_GAP = (
    r"\s+(?:(?:voces|voce|vcs|vc|you|guys|ustedes|vosotros|usted|tu|exactly|exactamente"
    r"|exatamente|mesmo|mismo|ahora|agora|now|actually|realmente)\s+)?"
)
# Where a reply that gives several facts divides: punctuation, or "and" before the next
# fact ("our follow-up is a mess and we're 40 people").
_CLAUSE = re.compile(
    r"[;:!?\n]+|[,.]+(?!\d)|\s+(?:and|y|e)\s+(?=(?:we|we're|we've|our|i|i'm|somos|tenemos|temos|nuestro"
    r"|nuestra|nosso|nossa|budget|presupuesto|or[cç]amento|the\s+budget|el\s+presupuesto"
    r"|o\s+or[cç]amento)\b)",
    re.IGNORECASE,
)
_WORDS = re.compile(r"[^\W\d_]{2,}")
# Words from which a reply with an FAQ's keyword but no question mark or question word is a
# statement (an answer in their own words), not the FAQ: "pricing" asks, "better pricing
# pages on our site" answers.
_STATEMENT_WORDS = 4
# ... unless it asks in the imperative: "tell me the price first", "quiero saber el precio".
_ASKS = re.compile(
    r"^\W*(?:please\s+)?(?:tell|send|show|give|explain|share|dime|dinos|digame|explicame"
    r"|mandame|enviame|pasame|me\s+(?:dices|diga|fala|manda|passa|envia)|fala|quiero\s+saber"
    r"|quero\s+saber|i\s+want\s+to\s+know|i'?d\s+like\s+to\s+know|can\s+you|could\s+you)\b"
)
# Politeness and filler that open a clause but describe nothing ("thanks for asking").
_PLEASANTRY = re.compile(
    r"^\W*(?:thanks?|thank\s+you|thx|ty|gracias|obrigad[oa]|valeu|ok(?:ay)?|sure|yes|yeah|yep"
    r"|si|sim|claro|perfect[oa]?|perfeito|great|cool|no\s+problem|of\s+course|por\s+supuesto"
    r"|com\s+certeza|well|bueno|bom|so|entonces|entao|let\s+me\s+see|as\s+i\s+said|como\s+te"
    r"\s+dije|como\s+eu\s+disse|good\s+question|buena\s+pregunta|boa\s+pergunta|sounds\s+good"
    r"|great\s+question|that'?s\s+a\s+(?:good|great)\s+question|lol|lmao|haha\w*|jaja\w*|jeje\w*"
    r"|kkk\w*|rs+|hmm+|hm+|umm+|uhm+|blz|beleza|dale|vale|opa|tudo\s+certo|de\s+boa"
    r"|let\s+me\s+think|dejame\s+pensar|deixa\s+eu\s+pensar|got\s+it|entendido|entendi"
    r"|noted|nice|awesome|genial|otimo|excelente|excellent)\b(?:\W+\w+){0,4}\W*$"
)
_FOR_WHEN = re.compile(
    r"^\W*(?:para|pra)\s+(?:ya|ja|hoy|hoje|ahora|agora|ayer|ontem|manana|amanha)\W*$"
)
# Words that name the budget itself ("cost" and "spend" also name other money).
_BUDGET_WORD = re.compile(
    r"\b(?:budget\w*|presupuest\w*|orcament\w*|invest\w*|inversion|verba|(?:can|could|would)"
    r"\s+spend|podemos\s+(?:gastar|invertir|investir)|set\s+aside|allocated)\b"
)
# Money that is not a budget: read out of its question, "revenue 2M" is not what they'd spend.
_OTHER_MONEY = re.compile(
    r"\b(?:revenue|turnover|arr|mrr|sales|raised|funding|valuation|salar(?:y|ies|io|ios)"
    r"|factur\w*|fatur\w*|ventas|vendas|ingresos|receita|ticket|followers|seguidores"
    r"|costs?|costing|cost\s+us|cuestan?|custam?|charged?|charges|cobr\w*|price[ds]?|precio"
    r"|preco|avg|average|promedio|deal|deals|orders?|pedidos?|spent|spend\s+on|gast\w*"
    r"|los(?:e|ing|t)|perd\w*|stuck|members?|miembros|membros|socios|users?|usuari\w*"
    r"|customers?|clientes?|clients?|subscribers?|suscriptores|assinantes|visits|visitors"
    r"|visitas|downloads|descargas|made|did|doing|earn\w*|vendemos|vendo|inventory"
    r"|inventario|estoque|stock|a\s+day|al\s+dia|por\s+dia|per\s+day|daily|last\s+year"
    r"|ano\s+pasado|ano\s+passado|in\s+20\d\d|en\s+20\d\d|em\s+20\d\d)\b"
)


@dataclass(frozen=True, slots=True)
class _Compiled:
    """Everything about a script the rules need, precompiled."""

    script: Script
    questions: dict[str, Question]  # by slot
    tables: dict[str, ChoiceTable]
    faq_re: re.Pattern[str] | None
    faq_ids: dict[str, str]  # FAQ id by the name of its phrase's group in faq_re
    # The words FAQ phrases begin with: the regex is tried only where one stands (None:
    # a phrase begins with punctuation, scan it all).
    faq_words: frozenset[str] | None


class _Message:
    """One message in its views, each computed at most once."""

    __slots__ = (
        "_free",
        "_numbers",
        "_timeline",
        "_unknown",
        "folded",
        "language",
        "norm",
        "now",
        "used",
    )

    def __init__(self, norm: str, now: datetime, language: str) -> None:
        self.norm = norm
        self.folded = fold(norm)
        self.now = now
        self.language = language
        self._numbers: list[NumberMatch] | None = None
        self._timeline: TimelineMatch | None | bool = False
        self._free: list[tuple[int, NumberMatch]] | None = None
        self._unknown: re.Match[str] | None | bool = False
        self.used: set[int] = set()  # indices of numbers already given to a slot

    @property
    def numbers(self) -> list[NumberMatch]:
        if self._numbers is None:
            self._numbers = find_numbers(self.norm, self.language)
        return self._numbers

    @property
    def timeline(self) -> TimelineMatch | None:
        if self._timeline is False:
            self._timeline = parse_timeline(self.folded, self.now)
        assert not isinstance(self._timeline, bool)
        return self._timeline

    @property
    def unknown(self) -> re.Match[str] | None:
        """The "I don't know" phrase in the message, if any."""
        if self._unknown is False:
            self._unknown = intents.unknown_answer(self.folded)
        assert not isinstance(self._unknown, bool)
        return self._unknown

    @property
    def same_len(self) -> bool:
        """Whether folding kept every offset (then spans in one are spans in the other)."""
        return len(self.folded) == len(self.norm)

    def verbatim(self, folded_piece: str) -> str:
        """The message's own words for a piece of its folded form (evidence is verbatim)."""
        if self.same_len:
            i = self.folded.find(folded_piece)
            if i >= 0:
                return self.norm[i : i + len(folded_piece)]
        return folded_piece

    def free_numbers(self) -> list[tuple[int, NumberMatch]]:
        """Numbers not yet used and not part of the time expression ("by March 15")."""
        if self._free is None:
            numbers = self.numbers
            if not numbers:
                self._free = []
            else:
                tl = self.timeline
                inside = tl is not None and self.same_len
                self._free = [
                    (i, n)
                    for i, n in enumerate(numbers)
                    if not (inside and tl is not None and tl.start <= n.start < tl.end)
                ]
        if not self.used:
            return self._free
        return [(i, n) for i, n in self._free if i not in self.used]


class RulesInterpreter:
    """Deterministic interpreter; also the LLM interpreter's fallback."""

    def __init__(self) -> None:
        self._cache: OrderedDict[tuple[str, str], _Compiled] = OrderedDict()
        self._last: _Compiled | None = None

    async def interpret(
        self, script: Script, session: Session, text: str, now: datetime
    ) -> Interpretation:
        """See :class:`~dialogs.interpretation.Interpreter`; runs :meth:`interpret_now`."""
        return self.interpret_now(script, session, text, now)

    def interpret_now(
        self, script: Script, session: Session, text: str, now: datetime
    ) -> Interpretation:
        """Interpret ``text`` synchronously (the engine calls this inline)."""
        norm = normalize(text, RULES_MAX_CHARS)
        if not norm:
            return Interpretation(Intent.UNKNOWN)
        msg = _Message(norm, now, script.language)
        if intents.is_stop(msg.folded) and not _when_not_stop(script, session, msg.folded):
            return Interpretation(Intent.STOP)  # no facts kept from an opt-out message
        compiled = self._compiled(script)
        slots: dict[str, SlotValue] = {}
        # A session from an older script version may ask a slot this one no longer has.
        open_q = None if session.open_slot is None else compiled.questions.get(session.open_slot)
        if open_q is not None:
            sv = _fill(compiled, open_q, msg, is_open=True)
            if sv is not None:
                slots[open_q.slot] = sv
        for q in script.questions:
            if q is open_q or session.filled(q.slot):
                continue
            sv = _fill(compiled, q, msg, is_open=False)
            if sv is not None:
                slots[q.slot] = sv

        injection = intents.looks_like_injection(msg.folded, text)
        human = intents.human_request(msg.folded)
        questionish = intents.looks_like_question(msg.folded)
        faq_id = _faq(compiled, msg.folded)
        if (
            faq_id is not None
            and not questionish
            and (
                slots
                or (
                    open_q is not None
                    and _takes_own_words(open_q)
                    and len(_WORDS.findall(msg.folded)) >= _STATEMENT_WORDS
                    and _ASKS.match(msg.folded) is None
                )
            )
        ):
            # "our price range is 10k" answers; it does not ask about price. Nor does "more
            # qualified demos for our sales team" ask who we are: it describes their need.
            faq_id = None
        if human is not None:
            # "falar com um consultor": the consultant is whom they ask for, not their need.
            asked = human.group(0)
            slots = {k: v for k, v in slots.items() if fold(v.evidence) not in asked}
            return Interpretation(Intent.HUMAN, slots, injection_suspected=injection)
        if faq_id is not None or (questionish and not slots):
            asked_slot = open_q.slot if open_q is not None else ""
            answer = slots.get(asked_slot)
            if answer is not None and faq_id is not None and answer.evidence.isdigit():
                # "what would it cost for a 10 page site?": a plain number in a question about
                # us is not their answer to ours (10 is no budget; "we're thinking 20k" is).
                del slots[asked_slot]
            return Interpretation(
                Intent.QUESTION,
                slots,
                faq_id=faq_id,
                question=msg.norm,
                injection_suspected=injection,
            )
        if not slots and intents.is_greeting(msg.folded):
            return Interpretation(Intent.GREETING, injection_suspected=injection)
        if open_q is not None and open_q.slot not in slots and not injection:
            # "our lead follow-up is a mess, we're 40 people": the need is kept beside the size.
            other = _own_words(open_q, msg) if not slots else _own_words_beside(open_q, msg, slots)
            if other is not None:
                slots[open_q.slot] = other
        intent = Intent.ANSWER if slots else Intent.UNKNOWN
        return Interpretation(intent, slots, injection_suspected=injection)

    def _compiled(self, script: Script) -> _Compiled:
        last = self._last
        if last is not None and last.script is script:
            return last  # the same script as the last message: the common case
        key = (script.id, script.version)
        hit = self._cache.get(key)
        if hit is not None and hit.script is script:
            self._cache.move_to_end(key)
            self._last = hit
            return hit
        compiled = _compile(script)
        self._cache[key] = compiled
        self._last = compiled
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return compiled


def _when_not_stop(script: Script, session: Session, folded: str) -> bool:
    """ "para ya" answers "when?" (right away), though alone it can also mean "stop it"."""
    if session.open_slot is None or _FOR_WHEN.match(folded) is None:
        return False
    open_q = next((q for q in script.questions if q.slot == session.open_slot), None)
    return open_q is not None and open_q.kind is AnswerKind.TIMELINE


def _compile(script: Script) -> _Compiled:
    tables = {q.slot: ChoiceTable(q.options) for q in script.questions if q.options}
    faq_ids: dict[str, str] = {}
    for entry in script.faq:
        for phrase in entry.match:
            key = " ".join(fold(phrase).split())
            if key:
                faq_ids.setdefault(key, entry.id)
    faq_re = None
    ordered = sorted(faq_ids, key=len, reverse=True)
    if ordered:
        # One named group per phrase: the match may hold a filler the phrase does not.
        body = "|".join(f"(?P<f{i}>{_faq_pattern(p)})" for i, p in enumerate(ordered))
        faq_re = re.compile(rf"(?<!\w)(?:{body})(?!\w)")
    faq_words = first_words(faq_ids)
    by_group = {f"f{i}": faq_ids[p] for i, p in enumerate(ordered)}
    questions = {q.slot: q for q in script.questions}
    return _Compiled(script, questions, tables, faq_re, by_group, faq_words)


def _faq_pattern(phrase: str) -> str:
    return re.escape(phrase).replace(r"\ ", _FAQ_GAP)


def _faq(compiled: _Compiled, folded: str) -> str | None:
    if compiled.faq_re is None:
        return None
    if compiled.faq_words is None:
        found = list(compiled.faq_re.finditer(folded))
    elif tokens(folded) & compiled.faq_words:
        found = matches_at_words(compiled.faq_re, folded, compiled.faq_words)
    else:
        return None
    best = max(found, key=lambda m: len(m.group(0)), default=None)
    return None if best is None or best.lastgroup is None else compiled.faq_ids[best.lastgroup]


def _fill(compiled: _Compiled, q: Question, msg: _Message, *, is_open: bool) -> SlotValue | None:
    kind = q.kind
    if kind is AnswerKind.TIMELINE:
        found = _timeline(compiled, q, msg, is_open=is_open)
    elif kind is AnswerKind.CHOICE:
        found = _choice(compiled, q, msg, is_open=is_open)
    elif kind is AnswerKind.NUMBER:
        found = _number(q, msg, is_open=is_open)
    elif kind is AnswerKind.EMAIL:
        email = find_email(msg.norm)
        found = SlotValue(email.address, email.evidence) if email else None
    else:
        found = None  # free text is only taken as the open answer, after intent checks
    if found is None and is_open and kind is not AnswerKind.FREE_TEXT:
        unknown = msg.unknown
        if unknown is not None:
            found = SlotValue(None, msg.verbatim(unknown.group(0)), unknown=True)
    return found


def _choice(compiled: _Compiled, q: Question, msg: _Message, *, is_open: bool) -> SlotValue | None:
    table = compiled.tables[q.slot]
    free = msg.free_numbers()
    if table.ranges and free and (_OTHER_MONEY.search(msg.folded) or mentions_budget(msg.folded)):
        # "we can spend 20k", "just me, but 50k followers": a headcount only if said as one.
        free = [(i, n) for i, n in free if n.unit == "people"]
    m = table.match(msg.folded, [n for _, n in free], strict=not is_open)
    if m is None:
        return None
    if m.how == "range":
        for i, n in free:
            if n.evidence == m.evidence:
                msg.used.add(i)
                break
    return SlotValue(m.option_id, msg.verbatim(m.evidence), confidence=m.confidence)


def _timeline(
    compiled: _Compiled, q: Question, msg: _Message, *, is_open: bool
) -> SlotValue | None:
    tl = msg.timeline
    if tl is not None and tl.kind == "unknown":
        tl = None  # handled as an "idk" by the caller, only for the open question
    if not is_open:
        if tl is None or not tl.strong:
            return None
        oid = bucket_for(q.options, tl.days)
        return None if oid is None else SlotValue(oid, msg.verbatim(tl.evidence))
    if tl is not None and tl.kind == "later":
        oid = bucket_for(q.options, None)
        return None if oid is None else SlotValue(oid, msg.verbatim(tl.evidence))
    # An admin-written synonym ("after summer") beats our reading of the same words, but not
    # a longer, more specific phrase around it ("as soon as possible" contains "soon").
    table = compiled.tables.get(q.slot)
    if table is not None:
        m = table.match(msg.folded, strict=True)
        if m is not None and (tl is None or len(m.evidence) >= len(tl.evidence)):
            return SlotValue(m.option_id, msg.verbatim(m.evidence), confidence=m.confidence)
    if tl is None:
        return None
    oid = bucket_for(q.options, tl.days)
    conf = 1.0 if tl.strong else 0.8
    return None if oid is None else SlotValue(oid, msg.verbatim(tl.evidence), confidence=conf)


def bucket_for(options: Sequence[Option], days: int | None) -> str | None:
    """The timeline bucket for a horizon: the soonest whose ``within_days`` holds it, else the
    open-ended bucket (``within_days`` None). ``days=None`` means "later / no date"."""
    if days is not None:
        best: Option | None = None
        for o in options:
            fits = o.within_days is not None and days <= o.within_days
            if fits and (best is None or (o.within_days or 0) < (best.within_days or 0)):
                best = o
        if best is not None:
            return best.id
    return next((o.id for o in options if o.within_days is None), None)


def _number(q: Question, msg: _Message, *, is_open: bool) -> SlotValue | None:
    wanted = q.unit if q.unit in ("people", "currency") else None
    free = [(i, n) for i, n in msg.free_numbers() if n.is_count]
    if not free and not is_open:
        return None  # most replies: nothing here for a question not asked
    pick: tuple[int, NumberMatch] | None = None
    said_budget = wanted == "currency" and mentions_budget(msg.folded)
    called_budget = said_budget and _BUDGET_WORD.search(msg.folded) is not None
    # Unasked, money beside a cost, a loss, revenue or followers is not what they would spend
    # ("the last agency cost us 1.5k a month"), unless they call it the budget.
    other_money = (
        wanted == "currency"
        and not is_open
        and not called_budget
        and _OTHER_MONEY.search(msg.folded) is not None
    )
    if other_money:
        return None
    if wanted is not None:
        pick = next(((i, n) for i, n in free if n.unit == wanted), None)
    if pick is None and wanted == "currency":
        # Written the way money is ("tenemos unos 25 mil", "50k"): the budget even unasked.
        pick = next(((i, n) for i, n in free if n.unit is None and n.bare_amount), None)
    if pick is None and (is_open or said_budget):
        # Not a number of something else: "from 20 to 100 meetings a month" is no budget.
        pick = next(((i, n) for i, n in free if n.unit is None and not n.counted), None)
    if pick is None:
        if is_open and wanted == "currency" and (zero := _ZERO_BUDGET.match(msg.folded)):
            return SlotValue(0, msg.verbatim(zero.group(0).strip()), confidence=0.9)
        if is_open and wanted == "currency" and _NO_BUDGET.search(msg.folded):
            m = _NO_BUDGET.search(msg.folded)
            assert m is not None
            return SlotValue(None, msg.verbatim(m.group(0)), unknown=True)
        return None
    i, n = pick
    if (q.min is not None and n.value < q.min) or (q.max is not None and n.value > q.max):
        return None
    msg.used.add(i)
    value: int | float = int(n.value) if n.value.is_integer() else n.value
    return SlotValue(value, n.evidence, confidence=0.85 if n.approximate else 0.95)


def _takes_own_words(q: Question) -> bool:
    return q.kind is AnswerKind.FREE_TEXT or (q.kind is AnswerKind.CHOICE and q.allow_other)


def _own_words_beside(q: Question, msg: _Message, slots: dict[str, SlotValue]) -> SlotValue | None:
    """The clauses of a reply that gave other facts too and that describe the open question's
    answer in words: none of the other answers' evidence in them, three words or more, not a
    pleasantry, a greeting, a question or an "I don't know"."""
    if not _takes_own_words(q):
        return None
    evidence = [v.evidence for v in slots.values() if v.evidence]
    kept = []
    for raw in _CLAUSE.split(msg.norm):
        part = raw.strip(" -")
        if any(e in part for e in evidence) or len(_WORDS.findall(part)) < 3:
            continue
        folded = fold(part)
        if (
            _PLEASANTRY.match(folded)
            or intents.is_greeting(folded)
            or intents.looks_like_question(folded)
            or intents.unknown_answer(folded)
        ):
            continue
        kept.append(part)
    if not kept:
        return None
    words = ", ".join(kept)
    return SlotValue(words, words, confidence=0.5)


def _own_words(q: Question, msg: _Message) -> SlotValue | None:
    """The reply itself as the answer, for free-text questions and open-ended choices."""
    if not _takes_own_words(q):
        return None
    if msg.unknown is not None:
        return SlotValue(None, msg.norm, unknown=True)
    if sum(c.isalpha() for c in msg.norm) < 3:
        return None  # "ok", "?", "👍": not an answer in words
    if _PLEASANTRY.match(msg.folded):
        return None  # "lol ok sure", "thanks!": the answer is still to come
    return SlotValue(msg.norm, msg.norm, confidence=0.6)
