"""Map a free-text reply to one of a question's options.

Prospects type instead of tapping: "webiste" (typo), "🚀 marketing", "option 2", "the first
one", "about 200 people". :class:`ChoiceTable` is built once per question (it precompiles the
phrase regex and the fuzzy vocabulary); :meth:`ChoiceTable.match` then tries, in order:

1. the whole reply is an option id, title or synonym;
2. a position ("2", "option 2", "the second one") for options without numeric ranges;
3. a number inside an option's range ("about 200 people" → 51–200);
4. an option phrase inside the reply, whole words, not negated ("not marketing");
5. rapidfuzz token matching for typos, above :data:`FUZZY_CUTOFF`.

Steps 2, 3 and 5 are for the question being asked; :meth:`ChoiceTable.match` with
``strict=True`` uses only the unambiguous step 4 (a phrase naming exactly one option).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple, Protocol

from rapidfuzz import fuzz, process

from dialogs.parsing.normalize import first_words, fold, matches_at_words, tokens
from dialogs.parsing.numbers import NumberMatch

FUZZY_CUTOFF = 84  # rapidfuzz ratio; 84 keeps "webiste"/"consultng", drops "sport"/"support"
FUZZY_MIN_LEN = 5  # shorter tokens are too easy to confuse ("add"/"ads", "ap"/"app")
STEM_MIN_LEN = 6  # "automat-", "develop-", "consult-": long enough to mean the same thing

_NEGATION = re.compile(
    r"(?:\b(?:not|no|dont|don't|without|except|ni|sin|nada\s+de|not\s+really|nao|nem|sem)\s+"
    r"(?:\w+\s+)?)$"
)
# A phrase right after "for"/"of"/"de"/"para" or a possessive names what the need is for or
# about, not the need: "a landing page for a campaign", "estrategia de crecimiento", "an audit
# of our marketing", "maintain our app", "manter nosso sistema".
_POSSESSIVE = (
    r"our|my|your|their|nuestro|nuestra|nuestros|nuestras|mi|mis|su|sus|nosso|nossa|nossos"
    r"|nossas|meu|minha|seu|sua"
)
_MODIFIER_BEFORE = re.compile(
    r"(?:\b(?:for|of|para|pra|pro|por|de|del|do|da|dos|das)\s+(?:(?:a|an|the|un|una|el|la|los"
    rf"|las|o|os|as|um|uma|new|nuevo|nueva|novo|nova|{_POSSESSIVE})\s+){{0,2}}"
    rf"|\b(?:{_POSSESSIVE})\s+(?:(?:new|nuevo|nueva|novo|nova)\s+)?)$"
)
_ORDINALS = {
    "first": 1,
    "1st": 1,
    "primero": 1,
    "primera": 1,
    "second": 2,
    "2nd": 2,
    "segundo": 2,
    "segunda": 2,
    "third": 3,
    "3rd": 3,
    "tercero": 3,
    "tercera": 3,
    "fourth": 4,
    "4th": 4,
    "cuarto": 4,
    "cuarta": 4,
    "fifth": 5,
    "5th": 5,
    "quinto": 5,
    "quinta": 5,
    "primeiro": 1,
    "primeira": 1,
    "terceiro": 3,
    "terceira": 3,
    "quarto": 4,
    "quarta": 4,
}
_POSITION = re.compile(
    r"^\W*(?P<opt>(?:option|opcion|opcao|opt|number|numero|no\.?|#)\s*)?(?P<n>\d{1,2})\s*[.)]?\W*$"
    r"|^\W*(?:the\s+|la\s+|el\s+|a\s+|o\s+)?(?P<w>" + "|".join(_ORDINALS) + r")(?:\s+(?:one"
    r"|option|opcion|opcao|una|uno))?\W*$"
)
_WORD = re.compile(rf"[^\W\d_]{{{FUZZY_MIN_LEN},}}")


class OptionLike(Protocol):
    """What the table needs from an option (``dialogs.script.Option`` fits)."""

    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def synonyms(self) -> list[str]: ...
    @property
    def min(self) -> float | None: ...
    @property
    def max(self) -> float | None: ...


class ChoiceMatch(NamedTuple):
    """The option a reply picked, how sure we are, and the words that picked it (a named
    tuple: immutable and cheap to build on the interpreter's hot path)."""

    option_id: str
    evidence: str
    confidence: float
    how: str  # "exact", "position", "range", "phrase", "fuzzy"


@dataclass(frozen=True, slots=True)
class _Range:
    option_id: str
    low: float
    high: float


class ChoiceTable:
    """Precompiled matching data for one question's options."""

    def __init__(self, options: Sequence[OptionLike]) -> None:
        self.ids: tuple[str, ...] = tuple(o.id for o in options)
        self._whole: dict[str, str] = {}
        phrases: dict[str, str] = {}
        for o in options:
            for raw in (o.id, o.id.replace("_", " "), o.title, *o.synonyms):
                p = _squash(fold(raw))
                if p:
                    self._whole.setdefault(p, o.id)
                    # Titles with digits ("1–10 people") are matched as ranges, not phrases.
                    if not any(c.isdigit() for c in p):
                        phrases.setdefault(p, o.id)
        self._phrases = phrases
        self._phrase_re = _alternation(phrases)
        self._phrase_starts = first_words(phrases)
        vocab = {p: oid for p, oid in phrases.items() if " " not in p and len(p) >= FUZZY_MIN_LEN}
        self._vocab = list(vocab)
        self._vocab_ids = list(vocab.values())
        self._stems: dict[str, list[tuple[str, str]]] = {}
        for word, oid in vocab.items():
            if len(word) >= STEM_MIN_LEN:
                self._stems.setdefault(word[:STEM_MIN_LEN], []).append((word, oid))
        self.ranges: tuple[_Range, ...] = tuple(
            _Range(
                o.id,
                o.min if o.min is not None else float("-inf"),
                o.max if o.max is not None else float("inf"),
            )
            for o in options
            if o.min is not None or o.max is not None
        )

    def match(
        self, folded: str, numbers: Iterable[NumberMatch] = (), *, strict: bool = False
    ) -> ChoiceMatch | None:
        """The option ``folded`` (a folded reply) picks, or None. See the module docstring."""
        whole = _squash(folded)
        if (oid := self._whole.get(whole)) is not None:
            return ChoiceMatch(oid, folded.strip(), 1.0, "exact")
        if not strict and (pos := self._position(folded)) is not None:
            return pos
        if self.ranges:
            picked = self._by_range(numbers, strict=strict)
            if picked is not None or strict:
                # Outside its own question, "large" or "small team" is too vague for a size.
                return picked
        phrase = self._by_phrase(folded, strict=strict)
        if phrase is not None or strict:
            return phrase
        return self._fuzzy(folded)

    def _position(self, folded: str) -> ChoiceMatch | None:
        m = _POSITION.match(folded)
        if not m:
            return None
        if m.group("n") and self.ranges and not m.group("opt"):
            return None  # "40" to a size question is forty people, not the 40th option
        n = int(m.group("n")) if m.group("n") else _ORDINALS[m.group("w")]
        if 1 <= n <= len(self.ids):
            return ChoiceMatch(self.ids[n - 1], m.group(0).strip(), 0.9, "position")
        return None

    def _by_range(self, numbers: Iterable[NumberMatch], *, strict: bool) -> ChoiceMatch | None:
        counts = [n for n in numbers if n.is_count and n.unit != "currency"]
        # A count of people beats a bare number before it ("3 offices, ~250 people overall"),
        # and the largest count is the company ("4 socios y 20 empleados").
        people = sorted((n for n in counts if n.unit == "people"), key=lambda n: -n.value)
        for num in people if people or strict else counts:
            oid = self.option_for(num)
            if oid is not None:
                return ChoiceMatch(oid, num.evidence, 0.9, "range")
        return None

    def option_for(self, num: NumberMatch) -> str | None:
        """The ranged option a number falls in; "over 200" skips past a range ending at 200,
        and a value in a gap between ranges goes to the nearest one."""
        value = num.value
        inside = [r for r in self.ranges if r.low <= value <= r.high]
        if num.bound == "above":
            inside = [r for r in inside if r.high > value] or [
                r for r in self.ranges if r.low > value
            ][:1]
        if inside:
            return inside[0].option_id
        if value < 0:
            return None
        nearest = min(self.ranges, key=lambda r: min(abs(value - r.low), abs(value - r.high)))
        return nearest.option_id

    def _by_phrase(self, folded: str, *, strict: bool) -> ChoiceMatch | None:
        if self._phrase_re is None:
            return None
        hits: list[tuple[str, re.Match[str]]] = []
        if self._phrase_starts is None:
            found: Iterable[re.Match[str]] = self._phrase_re.finditer(folded)
        elif tokens(folded) & self._phrase_starts:
            found = matches_at_words(self._phrase_re, folded, self._phrase_starts)
        else:
            return None
        for m in found:
            if _NEGATION.search(folded, max(0, m.start() - 30), m.start()):
                continue
            hits.append((self._phrases[_squash(m.group(0))], m))
        if not hits:
            return None
        distinct = {oid for oid, _ in hits}
        if len(distinct) > 1 and strict:
            return None  # "website and SEO" names two options: not clear enough to assume
        if len(distinct) == 1:
            oid, m = max(hits, key=lambda h: (len(h[1].group(0)), -h[1].start()))
        else:  # the need itself, not what it is for; then the longest, then the first
            oid, m = max(
                hits,
                key=lambda h: (
                    _MODIFIER_BEFORE.search(folded[max(0, h[1].start() - 40) : h[1].start()])
                    is None,
                    len(h[1].group(0)),
                    -h[1].start(),
                ),
            )
        confidence = 0.95 if len(distinct) == 1 else 0.7
        return ChoiceMatch(oid, m.group(0), confidence, "phrase")

    def _fuzzy(self, folded: str) -> ChoiceMatch | None:
        if not self._vocab:
            return None
        best: tuple[float, str, str] | None = None
        for tok in _WORD.findall(folded):
            found = process.extractOne(
                tok, self._vocab, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF
            )
            if found is not None and (best is None or found[1] > best[0]):
                best = (found[1], self._vocab_ids[found[2]], tok)
            elif best is None and (stem := self._stem(tok)) is not None:
                best = (FUZZY_CUTOFF, stem, tok)
        if best is None:
            return None
        score, oid, tok = best
        return ChoiceMatch(oid, tok, round(0.9 * score / 100, 3), "fuzzy")

    def _stem(self, tok: str) -> str | None:
        """Another form of the same word ("automate" / "automation", "automatizar" /
        "automatizacion"): a shared start of STEM_MIN_LEN+ letters covering most of both."""
        for word, oid in self._stems.get(tok[:STEM_MIN_LEN], ()):
            shared = _common_prefix(tok, word)
            if shared >= 0.7 * min(len(tok), len(word)):
                return oid
        return None


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@lru_cache(maxsize=256)  # every choice question of a turn squashes the same reply
def _squash(s: str) -> str:
    """Whole-reply key: punctuation and emoji-adjacent spaces don't matter ("Marketing!")."""
    return " ".join(re.sub(r"[^\w\s&+/'-]", " ", s).split()) or s.strip()


def _alternation(phrases: Iterable[str]) -> re.Pattern[str] | None:
    ordered = sorted(phrases, key=len, reverse=True)
    if not ordered:
        return None
    body = "|".join(re.escape(p).replace(r"\ ", r"[\s-]+") for p in ordered)
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)")
