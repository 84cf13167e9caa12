"""Click-to-chat links of campaigns for the console, with their QR codes (``segno``).

A campaign needs no table: its ref code is derived from its name
(:func:`bot.whatsapp.attribution.ref_code`), so the page lists the campaigns leads were
attributed to (:mod:`scheduler.store.campaigns`) plus the one an admin types in, and a QR
code is made from the slug in its URL whenever it is asked for.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import datetime

import segno

from bot.whatsapp.attribution import DEFAULT_TEXT, click_to_chat_link, ref_code, slugify

SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
SLUG_MAX = 40  # what attribution.slugify keeps


@dataclass(frozen=True, slots=True)
class CampaignLink:
    """A campaign's ref code and wa.me link (None without ``LEADBOT_WHATSAPP_NUMBER``)."""

    name: str
    slug: str
    ref: str
    link: str | None
    leads: int | None = None  # leads attributed to it (None: typed in, not seen)
    last_lead_at: datetime | None = None


def campaign_link(
    name: str,
    number: str,
    *,
    leads: int | None = None,
    last_lead_at: datetime | None = None,
) -> CampaignLink:
    """The link of campaign ``name`` (None when ``number`` is not a WhatsApp number, e.g.
    unset); ValueError when the name has no letters or digits."""
    slug = slugify(name)
    try:
        link: str | None = click_to_chat_link(number, slug, DEFAULT_TEXT)
    except ValueError:  # the number's fault, said once on the page (number_problem)
        link = None
    return CampaignLink(name, slug, ref_code(slug), link, leads, last_lead_at)


def number_problem(number: str) -> str | None:
    """Why links cannot be made to ``number`` (``LEADBOT_WHATSAPP_NUMBER``), or None."""
    if not number:
        return "set LEADBOT_WHATSAPP_NUMBER (the team's number with country code) to make links"
    try:
        click_to_chat_link(number, "check")
    except ValueError as exc:
        return f"LEADBOT_WHATSAPP_NUMBER: {exc}"
    return None


def is_slug(value: str) -> bool:
    """Whether ``value`` is a campaign slug as :func:`slugify` makes them."""
    return len(value) <= SLUG_MAX and SLUG.fullmatch(value) is not None


def qr_svg(link: str) -> bytes:
    """The QR code of ``link`` as an SVG document."""
    out = io.BytesIO()
    segno.make(link, error="m").save(out, kind="svg", scale=4, border=2, title=link)
    return out.getvalue()


def qr_png(link: str) -> bytes:
    """The QR code of ``link`` as a PNG image (big enough to print)."""
    out = io.BytesIO()
    segno.make(link, error="m").save(out, kind="png", scale=10, border=2)
    return out.getvalue()
