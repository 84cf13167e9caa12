"""Strip quoted history and signatures from a plain-text email reply.

What people actually send: the new text on top, then the client's attribution line and the
quoted thread. Recognized (first one wins, everything from there on is dropped):

- Gmail / Apple Mail / Thunderbird: ``On <date>, <name> <addr> wrote:`` (Gmail wraps it
  over two lines), plus the German and French forms;
- Outlook: ``-----Original Message-----``, or a ``From:`` line followed within a few lines
  by ``Sent:``/``Date:`` and ``To:``/``Subject:`` (often after a ``____`` rule);
- a signature separator ``-- `` and mobile footers ("Sent from my iPhone").

Lines starting with ``>`` are quotes wherever they are (interleaved replies keep the
answers between them).
"""

from __future__ import annotations

import re

_ATTRIBUTION = re.compile(
    r"^\s*(On\s.+\swrote:|Am\s.+\sschrieb\s.*:|Le\s.+\sa\s\xe9crit\s?:)\s*$", re.IGNORECASE
)
_ATTRIBUTION_START = re.compile(r"^\s*(On|Am|Le)\s.*\d", re.IGNORECASE)
_ORIGINAL = re.compile(r"^\s*-{2,}\s*(Original Message|Forwarded message)\s*-{2,}\s*$", re.I)
_RULE = re.compile(r"^\s*_{10,}\s*$")
_HEADER_FROM = re.compile(r"^\s*\*?(From|Von|De)\s*:\*?\s", re.IGNORECASE)
_HEADER_NEXT = re.compile(r"^\s*\*?(Sent|Date|To|Subject|Gesendet|Envoy\xe9)\s*:", re.IGNORECASE)
_SIGNATURE = re.compile(r"^-- ?$")
_MOBILE = re.compile(r"^\s*(Sent from my \w+|Get Outlook for \w+|Sent from Mail for)", re.I)


def _is_outlook_header(lines: list[str], index: int) -> bool:
    if not _HEADER_FROM.match(lines[index]):
        return False
    following = [line for line in lines[index + 1 : index + 5] if line.strip()]
    return sum(1 for line in following if _HEADER_NEXT.match(line)) >= 2


def _cut_index(lines: list[str]) -> int:
    for index, line in enumerate(lines):
        if _ATTRIBUTION.match(line) or _ORIGINAL.match(line) or _SIGNATURE.match(line):
            return index
        if _MOBILE.match(line):
            return index
        # Gmail wraps a long attribution: "On Mon, … Acme Sales <" / "sales@acme.com> wrote:"
        if (
            _ATTRIBUTION_START.match(line)
            and index + 1 < len(lines)
            and _ATTRIBUTION.match(f"{line} {lines[index + 1].strip()}")
        ):
            return index
        if _RULE.match(line) and index + 1 < len(lines) and _is_outlook_header(lines, index + 1):
            return index
        if _is_outlook_header(lines, index):
            return index
    return len(lines)


def strip_quotes(text: str) -> str:
    """The new part of a reply: quotes, attribution lines and signatures removed."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept = [line for line in lines[: _cut_index(lines)] if not line.lstrip().startswith(">")]
    return "\n".join(line.rstrip() for line in kept).strip()
