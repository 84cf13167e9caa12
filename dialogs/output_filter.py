"""The output filter every model-written text passes before a prospect can read it.

Follow-up drafts (:mod:`scheduler.followups.drafting`, re-exported as
``scheduler.followups.draft_filter``) and the LLM interpreter's wording of the next question
(:mod:`dialogs.interpreters.llm`) are both checked here. A draft (above all an LLM's) may
only contain links we configured (the Calendly URL, the public URL, the cadence file's
resources), no prices or discounts unless the cadence file lists them, and must fit the
channel's length cap. :func:`problems` says what is wrong (the
LLM drafter then falls back to the template); :func:`clean` repairs a template's output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_URL = re.compile(r"https?://[^\s<>\"')\]]+", re.IGNORECASE)
_PRICE = re.compile(
    r"(?:[$€£¥]\s?\d[\d,.]*\s?[kKmM]?)"
    r"|(?:\b\d[\d,.]*\s?(?:usd|eur|gbp|dollars?|euros?|pounds?)\b)"
    r"|(?:\b\d{1,3}\s?%\s?(?:off|discount)\b)"
    r"|(?:\b(?:discount|coupon|promo(?:tion(?:al)?)?\s?code|free\s+trial|special\s+offer)\w*)",
    re.IGNORECASE,
)
_TRAILING = ".,;:!?"


@dataclass(frozen=True, slots=True)
class DraftPolicy:
    """What a draft may contain."""

    allowed_urls: tuple[str, ...]
    allowed_prices: tuple[str, ...] = ()
    max_length: int = 1500


def _url_allowed(url: str, allowed: tuple[str, ...]) -> bool:
    for entry in allowed:
        base = entry.rstrip("/")
        # A prefix only counts at a boundary: calendly.com/acme must not admit acme.evil.com.
        if url == base or (url.startswith(base) and url[len(base)] in "/?#"):
            return True
    return False


def _urls(text: str) -> list[str]:
    return [m.group(0).rstrip(_TRAILING) for m in _URL.finditer(text)]


def _prices(text: str, allowed: tuple[str, ...]) -> list[str]:
    masked = text
    for price in allowed:
        masked = masked.replace(price, " ")
    return [m.group(0) for m in _PRICE.finditer(masked)]


def problems(text: str, policy: DraftPolicy) -> list[str]:
    """Every reason ``text`` may not be sent as it is (empty when it may)."""
    out: list[str] = []
    if not text.strip():
        out.append("empty draft")
    bad_links = [u for u in _urls(text) if not _url_allowed(u, policy.allowed_urls)]
    out += [f"link not allowed: {u}" for u in bad_links]
    out += [f"price or offer not allowed: {p!r}" for p in _prices(text, policy.allowed_prices)]
    if len(text) > policy.max_length:
        out.append(f"longer than {policy.max_length} characters ({len(text)})")
    return out


def clean(text: str, policy: DraftPolicy) -> tuple[str, list[str]]:
    """``text`` with disallowed links and prices removed and cut to the length cap, plus a
    note of each change (stored with the draft)."""
    notes: list[str] = []

    def drop_url(match: re.Match[str]) -> str:
        url = match.group(0).rstrip(_TRAILING)
        if _url_allowed(url, policy.allowed_urls):
            return match.group(0)
        notes.append(f"removed link {url}")
        return match.group(0)[len(url) :]

    text = _URL.sub(drop_url, text)
    for price in _prices(text, policy.allowed_prices):
        notes.append(f"removed {price!r}")
        text = text.replace(price, "", 1)
    text = re.sub(r"[ \t]{2,}", " ", text).strip()
    if len(text) > policy.max_length:
        notes.append(f"cut to {policy.max_length} characters")
        text = truncate(text, policy.max_length)
    return text, notes


def truncate(text: str, limit: int) -> str:
    """Cut at the last sentence or word boundary that fits, ending with an ellipsis."""
    if len(text) <= limit:
        return text
    head = text[: max(limit - 1, 0)]
    for sep in (". ", "\n", " "):
        cut = head.rfind(sep)
        if cut > limit // 2:
            head = head[: cut + (1 if sep == ". " else 0)]
            break
    return head.rstrip() + "…"
