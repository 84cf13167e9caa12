"""Is a received email a person's reply, an auto-reply, or a bounce? (Pure.)

Auto-replies (out of office, "we got your ticket", list mail) must not count as a reply: the
lead did not answer, so the cadence goes on. Detection follows RFC 3834 (``Auto-Submitted``
other than ``no``) and the headers the big clients set (``X-Autoreply``,
``X-Autorespond``, ``Precedence: bulk|auto_reply|list|junk``, ``X-Auto-Response-Suppress``
from Exchange), then typical subjects.

Bounces (delivery status notifications) come from ``MAILER-DAEMON``/``postmaster`` or are
``multipart/report; report-type=delivery-status``. Only a permanent failure (status 5.x.x)
names addresses to suppress; a delay (4.x.x) changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.email.inbound_message import InboundEmail

_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|ooo\b|"
    r"abwesenheitsnotiz|r\xe9ponse automatique|absence|away from (the )?office|"
    r"on (annual )?leave|vacation reply|delivery status notification|"
    r"undeliver(ed|able)|mail delivery (failed|failure|system)|returned mail)",
    re.IGNORECASE,
)
_BOUNCE_SENDER = re.compile(r"^(mailer-daemon|postmaster|mail-daemon)@", re.IGNORECASE)
_STATUS = re.compile(r"^\s*Status:\s*([245])\.(\d{1,3})\.(\d{1,3})", re.IGNORECASE | re.MULTILINE)
_ENHANCED = re.compile(r"\b([45])\.(\d{1,3})\.(\d{1,3})\b")
_RECIPIENT_FIELD = re.compile(
    r"^\s*(?:Final|Original)-Recipient:\s*rfc822;\s*<?([^\s<>;]+@[^\s<>;]+?)>?\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_ADDRESS = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")


@dataclass(frozen=True, slots=True)
class Bounce:
    """A delivery failure report. ``permanent`` when the status is 5.x.x."""

    addresses: tuple[str, ...]
    status: str
    permanent: bool


def is_auto_reply(email: InboundEmail) -> bool:
    """Whether ``email`` was sent by a machine on a person's behalf (not a real reply)."""
    auto = (email.header("Auto-Submitted") or "").strip().lower()
    if auto and auto != "no":
        return True
    if email.header("X-Autoreply") is not None or email.header("X-Autorespond") is not None:
        return True
    if (email.header("Precedence") or "").strip().lower() in (
        "bulk",
        "auto_reply",
        "list",
        "junk",
    ):
        return True
    suppress = (email.header("X-Auto-Response-Suppress") or "").lower()
    if suppress and ("oof" in suppress or "autoreply" in suppress or suppress == "all"):
        return True
    return bool(_AUTO_SUBJECT.match(email.subject))


def bounce_of(email: InboundEmail, candidates: frozenset[str] = frozenset()) -> Bounce | None:
    """The delivery failure ``email`` reports, or None when it is not a bounce.

    Failed addresses come from the DSN's ``Final-Recipient``/``Original-Recipient`` fields
    and ``X-Failed-Recipients``; when a flattened report has neither, any of ``candidates``
    (addresses we sent to) mentioned in the text.
    """
    content_type = (email.header("Content-Type") or "").lower()
    is_report = "multipart/report" in content_type and "delivery-status" in content_type
    if not (is_report or _BOUNCE_SENDER.match(email.sender)):
        return None
    status_match = _STATUS.search(email.text) or _ENHANCED.search(email.text)
    if status_match is None:
        return Bounce(addresses=(), status="", permanent=False)
    status = ".".join(status_match.groups())
    found = [m.lower() for m in _RECIPIENT_FIELD.findall(email.text)]
    failed = email.header("X-Failed-Recipients")
    if failed:
        found += [a.strip().lower() for a in failed.split(",") if "@" in a]
    if not found and candidates:
        found = [a.lower() for a in _ADDRESS.findall(email.text) if a.lower() in candidates]
    return Bounce(
        addresses=tuple(dict.fromkeys(found)), status=status, permanent=status.startswith("5")
    )
