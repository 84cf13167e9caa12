"""Email addresses in prospect text."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Pragmatic, not RFC 5322: what people type in a chat. Bounded lengths keep it linear.
_EMAIL = re.compile(
    r"(?<![\w.+-])(?P<addr>[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})(?![\w-])"
)
# "john at acme dot com": people dodge spam filters this way.
_SPELLED = re.compile(
    r"(?<![\w.])(?P<user>[A-Za-z0-9][A-Za-z0-9._%+-]{0,63})\s*[\[(]?\s*(?:at|arroba)\s*[\])]?\s*"
    r"(?P<domain>[A-Za-z0-9-]{1,63}(?:\s*[\[(]?\s*(?:dot|punto)\s*[\])]?\s*[A-Za-z0-9-]{1,63})+)"
    r"(?![\w])",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class EmailMatch:
    """An email address: ``address`` lower-cased, ``evidence`` as written."""

    address: str
    evidence: str


def find_email(text: str) -> EmailMatch | None:
    """The first email address in ``text``, written plainly or spelled out, or None."""
    m = _EMAIL.search(text)
    if m:
        addr = m.group("addr").rstrip(".")
        if ".." not in addr:
            return EmailMatch(addr.lower(), m.group("addr"))
    s = _SPELLED.search(text)
    if s:
        domain = re.sub(
            r"\s*[\[(]?\s*(?:dot|punto)\s*[\])]?\s*", ".", s.group("domain"), flags=re.I
        )
        tld = domain.rsplit(".", 1)[-1]
        if 2 <= len(tld) <= 24 and tld.isalpha():
            return EmailMatch(f"{s.group('user')}@{domain}".lower(), s.group(0))
    return None
