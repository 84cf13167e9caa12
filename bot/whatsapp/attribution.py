"""Where a WhatsApp lead came from: click-to-chat ref codes and Click-to-WhatsApp ads.

wa.me links have no ``ref`` parameter, so a campaign travels as a visible code in the
prefilled text: ``[ref:fb-spring.4k2]``. The code is the campaign's slug plus a 3-character
check (CRC-32 of the slug in base 36): no table to keep in sync, and a code the prospect
edited ("[ref:fb-sprin.4k2]") fails the check and is recorded as source ``unknown`` instead
of crediting a campaign that never existed. The check is for typos, not a secret.

An ad click is better evidence than any text: its ``referral`` wins over a ref code.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from urllib.parse import quote

from bot.whatsapp.envelope import InboundMessage
from scheduler.pipeline.sandbox_leads import SANDBOX_SOURCE  # leads the sandbox made: kept apart
from scheduler.store.ad_clicks import CLICKED_AT

REF_PATTERN = re.compile(r"\[\s*ref\s*:\s*([^\]\s]*)\s*\]", re.IGNORECASE)
DEFAULT_TEXT = "Hi! I'd like to know more."
UNKNOWN = "unknown"
AD_SOURCE = "ctwa_ad"
SANDBOX_PHONE_ID = "sandbox-phone-id"  # the business number the sandbox's bodies are sent to
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_SLUG_MAX = 40


def slugify(campaign: str) -> str:
    """``"FB Spring '26"`` → ``"fb-spring-26"``; raise ValueError when nothing is left."""
    slug = re.sub(r"[^a-z0-9]+", "-", campaign.strip().lower()).strip("-")[:_SLUG_MAX]
    slug = slug.strip("-")
    if not slug:
        raise ValueError(f"campaign name {campaign!r} has no letters or digits")
    return slug


def _check(slug: str) -> str:
    n = zlib.crc32(slug.encode()) % 36**3
    return "".join(_BASE36[(n // 36**i) % 36] for i in (2, 1, 0))


def ref_code(campaign: str) -> str:
    """The ref code of ``campaign``: ``<slug>.<check>``."""
    slug = slugify(campaign)
    return f"{slug}.{_check(slug)}"


def click_to_chat_link(number: str, campaign: str, text: str = DEFAULT_TEXT) -> str:
    """``https://wa.me/<digits>?text=<text> [ref:<code>]`` for ``campaign``."""
    digits = re.sub(r"\D", "", number)
    if len(digits) < 8:
        raise ValueError(f"not a WhatsApp number with country code: {number!r}")
    message = f"{text.strip()} [ref:{ref_code(campaign)}]"
    return f"https://wa.me/{digits}?text={quote(message, safe='')}"


@dataclass(frozen=True, slots=True)
class Attribution:
    """A lead's source (campaign slug, ``ctwa_ad`` or ``unknown``) and its details."""

    source: str
    details: dict[str, str]


def campaign_of(code: str) -> str | None:
    """The campaign slug of a well-formed, unedited ref code, else None."""
    slug, dot, check = code.strip().lower().rpartition(".")
    if not dot or not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug) or _check(slug) != check:
        return None
    return slug


def strip_ref(text: str) -> str:
    """``text`` without its ref code (the interpreter should not read "[ref:...]")."""
    return REF_PATTERN.sub("", text).strip()


def attribute(first: InboundMessage) -> Attribution:
    """The attribution of a lead whose first message is ``first``."""
    if first.phone_number_id == SANDBOX_PHONE_ID:
        return Attribution(SANDBOX_SOURCE, {"channel": "sandbox"})
    details = {"channel": "whatsapp"}
    if first.referral is not None:
        details.update(first.referral.attribution())
        if first.referral.ctwa_clid:
            # When the click happened: Meta attributes conversions within 7 days of it.
            details[CLICKED_AT] = first.timestamp.isoformat()
        return Attribution(AD_SOURCE, details)
    match = REF_PATTERN.search(first.text or "")
    if match is None:
        return Attribution(UNKNOWN, details)
    slug = campaign_of(match.group(1))
    if slug is None:
        details["ref_invalid"] = match.group(1)[:100]
        return Attribution(UNKNOWN, details)
    details.update(campaign=slug, ref=match.group(1).lower())
    return Attribution(slug, details)
