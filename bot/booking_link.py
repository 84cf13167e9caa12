"""The lead-tagged booking link: ``LEADBOT_CALENDLY_URL`` prefilled with the lead's name and
email, and ``utm_content=<lead.token>`` so Calendly's webhook tells us whose booking it is.

Calendly prefills the invitee form from ``name`` and ``email`` query parameters and passes
``utm_*`` parameters through to the invitee's ``tracking`` object.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def booking_link(base_url: str, *, token: str, name: str | None, email: str | None) -> str:
    """``base_url`` with the lead's prefill and tag added (existing query parameters kept;
    ours replace any of the same name)."""
    parts = urlsplit(base_url)
    ours = {"name": name, "email": email, "utm_content": token}
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ours]
    query += [(k, v) for k, v in ours.items() if v]
    return urlunsplit(parts._replace(query=urlencode(query)))
