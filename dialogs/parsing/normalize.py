"""Make untrusted prospect text safe and regular before anything reads it.

:func:`normalize` is applied to every message before the rules read it and before it goes
into an LLM prompt: NFKC (full-width and styled letters become plain ones), format characters
removed (zero-width spaces and joiners, bidi overrides, BOM, soft hyphen, tag characters:
they hide words from filters and reorder what a human sees), control characters dropped,
``<lead_message>``-like tags stripped (so a message cannot close the envelope the prompt puts
it in), whitespace collapsed, length capped. It is idempotent.

:func:`fold` is the matching form: case-folded and accent-free ("Sé" → "se").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

DEFAULT_MAX_CHARS = 2000

# Invisible code points: every Unicode "Cf" (format) range — zero-width space/joiners, bidi
# embeddings/overrides/isolates, BOM, soft hyphen, tag characters — plus the Hangul fillers and
# the combining grapheme joiner, which render as nothing too. Listed rather than computed from
# unicodedata at import (that scan costs ~0.3 s); a test checks the list covers every Cf.
_INVISIBLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x115F, 0x1160),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0x3164, 0x3164),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
)
_DROP: dict[int, None] = {cp: None for lo, hi in _INVISIBLE_RANGES for cp in range(lo, hi + 1)}
# C0/C1 controls except the whitespace ones (those collapse to a space below).
_DROP.update({cp: None for cp in (*range(0x00, 0x09), 0x0E, 0x0F, *range(0x10, 0x20))})
_DROP.update({cp: None for cp in range(0x7F, 0xA0) if cp != 0x85})
# Anything shaped like an XML/HTML tag with a name: <lead_message>, </system>, <b class=x>.
# Bounded so a pathological message cannot make the regex slow.
_TAG = re.compile(r"<\s*/?\s*[A-Za-z_][\w.:-]{0,64}(?:\s[^<>]{0,256})?/?\s*>")
_SPACE = re.compile(r"\s+")


def normalize(text: str, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """The safe, regular form of ``text``, at most ``max_chars`` characters."""
    # Cap early so a 50 kB message costs no more than a long one; the slack leaves room for
    # what the steps below remove.
    s = text[: max_chars * 4 + 64]
    # Drop invisibles *before* NFKC so "e<ZWSP><acute>" composes like "e<acute>" would; and
    # after, for the rare compatibility mapping that yields one.
    if s.isascii():
        # NFKC changes nothing in ASCII: skip it (the common case); and printable ASCII has
        # no control character to drop.
        if not s.isprintable():
            s = s.translate(_DROP)
    else:
        s = unicodedata.normalize("NFKC", s.translate(_DROP)).translate(_DROP)
    # Removing one tag can join two halves into a new one ("<lead<x>_message>"): repeat.
    for _ in range(8):
        if "<" not in s:
            break
        stripped = _TAG.sub(" ", s)
        if stripped == s:
            break
        s = stripped
    else:
        s = s.replace("<", " ").replace(">", " ")
    s = " ".join(s.split())  # same whitespace as the regex \s, collapsed; and stripped
    if len(s) > max_chars:
        # A cut can leave a sequence that normalizes differently on its own; settle it so
        # normalize(normalize(x)) == normalize(x).
        s = _settle(s[:max_chars].rstrip(), max_chars)
    return s


def _settle(s: str, max_chars: int) -> str:
    for _ in range(4):
        t = unicodedata.normalize("NFKC", s.translate(_DROP)).translate(_DROP)
        t = _TAG.sub(" ", t)
        t = _SPACE.sub(" ", t).strip()[:max_chars].rstrip()
        if t == s:
            return s
        s = t
    return s


# Combining marks (accents) in the blocks Latin-script chat actually uses.
_MARKS: dict[int, None] = {
    cp: None
    for lo, hi in (
        (0x0300, 0x036F),
        (0x1AB0, 0x1AFF),
        (0x1DC0, 0x1DFF),
        (0x20D0, 0x20FF),
        (0xFE20, 0xFE2F),
    )
    for cp in range(lo, hi + 1)
}


def fold(text: str) -> str:
    """Case-folded, accent-free form for matching ("¿Cuánto CUESTA?" → "¿cuanto cuesta?")."""
    if text.isascii():
        return text.lower()  # the common case, and casefold() == lower() for ASCII
    return unicodedata.normalize("NFD", text.casefold()).translate(_MARKS)


_TOKEN = re.compile(r"[^\W_]+")


@lru_cache(maxsize=256)
def tokens(folded: str) -> frozenset[str]:
    """The words of a folded message, as a set. Parsers check it before running a costly
    regex ("is any month name here?"); cached because every parser asks for the same text."""
    return frozenset(_TOKEN.findall(folded))


def matches_at_words(
    pattern: re.Pattern[str], text: str, starts: frozenset[str], *, lower: bool = False
) -> list[re.Match[str]]:
    """What ``pattern.finditer(text)`` finds when every match begins with one of the words in
    ``starts``, found by trying the pattern only where such a word begins: a long alternation
    tried at every position of a message costs microseconds. ``lower``: compare each word
    lower-cased (``starts`` are lower-case, ``text`` is not)."""
    out: list[re.Match[str]] = []
    end = 0
    for tok in _TOKEN.finditer(text):
        word = tok.group(0).lower() if lower else tok.group(0)
        if tok.start() < end or word not in starts:
            continue
        m = pattern.match(text, tok.start())
        if m is not None:
            out.append(m)
            end = m.end()
    return out


def first_words(phrases: Iterable[str]) -> frozenset[str] | None:
    """The words ``phrases`` begin with, for :func:`matches_at_words`; None if one of them
    begins with something else ("¿", "#"), so only a full scan finds it."""
    out = set()
    for p in phrases:
        m = _TOKEN.match(p)
        if m is None:
            return None
        out.add(m.group(0))
    return frozenset(out)


def word_set(words: str) -> frozenset[str]:
    """A frozen set from space-separated words (keeps long vocabularies readable)."""
    return frozenset(words.split())
