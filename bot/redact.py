"""Keep secrets and personal data out of the logs.

- :class:`RedactingAccessLogger` (``leadbot serve`` uses it for aiohttp's access log): the
  tokens of signed links (``/approve/<token>``, ``/unsubscribe/<token>``) and the values of
  sensitive query parameters (``hub.verify_token``, ``?phone=``, anything named like a
  token, key, secret, signature, password, phone or email) become ``<redacted>``, in the
  request line and in every other field (a ``Referer`` carries the same URLs).
- :func:`redact_url`: a URL with its credentials hidden, for error messages about a
  configured URL (``LEADBOT_REDIS_URL=redis://:password@host`` must not be echoed).
- :class:`PersonalDataFilter` (installed on the log handlers by the CLI's commands that
  run the service, :func:`install`): email addresses keep only their domain and phone
  numbers their last two digits, in every log line (``jane@acme.com`` → ``***@acme.com``,
  ``+14155550123`` → ``+***23``): enough to tell cases apart, not to reach anybody.

SQL statements' parameters (names, emails) stay out of error messages through the engine's
``hide_parameters`` (``scheduler.store.engine``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_log import AccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

REDACTED = "<redacted>"
TOKEN_PATHS = ("approve", "unsubscribe")
"""First path segments whose next segment is a signed token."""

_PATH_TOKEN = re.compile(r"(/(?:" + "|".join(TOKEN_PATHS) + r")/)[^/?#\s\"]+", re.IGNORECASE)
_SENSITIVE = r"(?:token|secret|password|passwd|key|sig|signature|phone|email|mail|challenge)"
_QUERY_VALUE = re.compile(
    r"([?&;][^=&;#\s\"]*" + _SENSITIVE + r"[^=&;#\s\"]*=)[^&;#\s\"]*", re.IGNORECASE
)


def redact_text(text: str) -> str:
    """``text`` (a request line, a path, a Referer…) with link tokens and sensitive query
    values replaced by ``<redacted>``."""
    if "/" not in text and "=" not in text:
        return text
    return _QUERY_VALUE.sub(r"\1" + REDACTED, _PATH_TOKEN.sub(r"\1" + REDACTED, text))


def redact_url(url: str) -> str:
    """``url`` with any credentials (``user:password@``) replaced by ``***@``; works on
    strings that do not parse as URLs too."""
    at = url.rfind("@")  # a password may hold anything, '/' and '@' included
    if at < 0:
        return url
    start = url.find("//")
    start = start + 2 if 0 <= start < at else 0
    return url[:start] + "***" + url[at:]


class RedactingAccessLogger(AccessLogger):
    """aiohttp's access logger (same format, same ``extra`` fields), every field redacted
    with :func:`redact_text`."""

    def _format_line(
        self, request: BaseRequest, response: StreamResponse, time: float
    ) -> Iterable[tuple[str | tuple[str, str], str]]:
        return [
            (key, redact_text(value) if isinstance(value, str) else value)
            for key, value in super()._format_line(request, response, time)
        ]


_EMAIL = re.compile(r"[\w.+'%-]+@((?:[\w-]+\.)+[\w-]+)")
_PHONE = re.compile(r"\+\d{5,13}(\d{2})\b")


def redact_personal(text: str) -> str:
    """``text`` with email addresses reduced to their domain and phone numbers (E.164) to
    their last two digits."""
    if "@" in text:
        text = _EMAIL.sub(r"***@\1", text)
    if "+" in text:
        text = _PHONE.sub(r"+***\1", text)
    return text


class PersonalDataFilter(logging.Filter):
    """Rewrites each record's message and traceback with :func:`redact_personal`
    (arguments merged in first, so a ``%s`` filled with an address is redacted too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_personal(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            # Formatted here (the handler's formatter reuses ``exc_text``): an exception's
            # message may hold an address too ("'+5215512345678' is not a phone number").
            record.exc_text = redact_personal(_FORMATTER.formatException(record.exc_info))
        return True


_FORMATTER = logging.Formatter()


def install(logger: logging.Logger | None = None) -> None:
    """Add a :class:`PersonalDataFilter` to every handler of ``logger`` (the root)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, PersonalDataFilter) for f in handler.filters):
            handler.addFilter(PersonalDataFilter())


ACCESS_LOG_CLASS: type[AbstractAccessLogger] = RedactingAccessLogger
"""What ``leadbot serve`` passes to aiohttp as ``access_log_class``."""
