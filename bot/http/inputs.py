"""What every HTTP edge does to input before anything else sees it.

- :func:`loads`: JSON from a request body, never a 500. Deep nesting, numbers no store can
  hold (a 5,000-digit integer, ``1e400``), ``NaN`` and bad UTF-8 are :class:`RequestInputError`
  (the caller answers 400). Integers beyond 64 bits become floats, as orjson reads them, so
  that whatever is parsed can be written back into a JSON column.
- :func:`clean` / :func:`clean_text`: text as the database can store it. NUL characters are
  removed (PostgreSQL refuses them in text and ``jsonb``), lone UTF-16 surrogates (valid
  JSON escapes, but not encodable to UTF-8) become U+FFFD.
- :func:`parse_id` / :func:`parse_int`: ids and counts from URLs and query strings, ASCII
  digits only (``int()`` also takes ``1_0``, ``+1``, `` 1`` and Arabic-Indic digits) and
  within the 64-bit signed range every id column has.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from dialogs.errors import InputError

# Every id column is a signed 64-bit integer (BIGINT on PostgreSQL, INTEGER on SQLite).
MAX_ID = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")
_SURROGATES = re.compile("[\ud800-\udfff]")


class RequestInputError(InputError, ValueError):
    """The input is unusable; the message says why (safe to show the client)."""


def loads(raw: bytes | str) -> Any:
    """Parse JSON strictly (see the module docstring); strings come back :func:`clean`."""
    try:
        return clean(orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        if "surrogate" not in str(exc):
            raise RequestInputError(f"the body is not valid JSON: {exc}") from None
    # orjson refuses escaped lone surrogates ("\ud800"); they are valid JSON that people's
    # devices do produce (a name cut mid-emoji), so read them with the standard library,
    # keep its numbers to what orjson would give, and replace the surrogates.
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return clean(json.loads(text, parse_int=_int, parse_constant=_no_constant))
    except RecursionError:
        raise RequestInputError("the body is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, ours
        raise RequestInputError(f"the body is not valid JSON: {exc}") from None


def _int(text: str) -> int | float:
    if len(text.lstrip("-")) <= 20:
        number = int(text)
        if -(2**63) <= number < 2**64:  # what orjson reads (and writes back) as an integer
            return number
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number is out of range")
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def clean_text(text: str) -> str:
    """``text`` without NUL characters and with lone surrogates replaced by U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii() and _SURROGATES.search(text):
        text = _SURROGATES.sub("\ufffd", text)
    return text


def clean(value: Any) -> Any:
    """:func:`clean_text` applied to every string (keys too) inside decoded JSON."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k): clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def parse_id(text: str | None) -> int | None:
    """A positive id written in ASCII digits that fits a 64-bit column, else None."""
    if text is None or not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None


def parse_int(text: str, *, low: int = 0, high: int = MAX_ID) -> int:
    """A query-string integer in ``[low, high]``; raise :class:`RequestInputError` otherwise."""
    if not _DIGITS.fullmatch(text):
        raise RequestInputError(f"{text[:30]!r} is not a number of ASCII digits")
    value = int(text)
    if not low <= value <= high:
        raise RequestInputError(f"{value} is not between {low} and {high}")
    return value


def valid_id(value: Any) -> bool:
    """Whether ``value`` (from decoded JSON, e.g. a signed token) is a usable row id."""
    return type(value) is int and 0 < value <= MAX_ID
