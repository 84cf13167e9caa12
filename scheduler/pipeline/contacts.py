"""Normalizing contact details so that one person is one lead.

Emails are trimmed, lower-cased, cleaned of invisible characters, and their domain is
written in its ASCII (punycode) form, so ``ana@bücher.de`` and ``ana@xn--bcher-kva.de`` are
one person; phones become E.164 (``+14155550123``) via
``phonenumbers``, with a default region for numbers written without a country code.

A few countries write one mobile two ways, and WhatsApp sends the older form as the ``wa_id``;
:func:`normalize_phone` folds both into one E.164 number so that one person is one lead:

- Mexico: ``+52 1 55 1234 5678`` (the pre-2019 mobile prefix 1, still WhatsApp's ``521…``)
  is ``+52 55 1234 5678``.
- Brazil: mobiles gained a leading 9 (``+55 61 9xxxx-xxxx``); old accounts still send
  ``55 61 xxxx-xxxx`` (eight digits starting 6-9): the 9 is added.
- Argentina: mobiles are ``+54 9 …`` internationally and ``… 15 …`` nationally;
  ``phonenumbers`` already folds the national form into the ``9`` form.

:func:`phone_from_wa_id` derives the E.164 phone of a WhatsApp id, or None when it is not a
number we can read (the WhatsApp id itself stays the address replies go to).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import idna
import phonenumbers
from phonenumbers import timezone as phone_timezone

from scheduler.errors import InvalidLeadError

# Deliberately simple: one @, no spaces, a dot in the domain. Deliverability is checked by
# sending, not by regex; this only catches typos and junk in forms and CSVs.
# The top-level domain is letters, or an internationalized one in punycode (xn--p1ai).
_EMAIL = re.compile(r"^[^@\s<>(),;:\"]+@[^@\s<>(),;:\"]+\.(?:[a-z]{2,}|xn--[a-z0-9-]+)$")
# Invisible characters that copy-paste and some form builders leave in addresses: zero-width
# space / non-joiner / joiner, word joiner, byte-order mark, soft hyphen.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))


def normalize_email(raw: str) -> str:
    """Return the canonical form of an email address or raise :class:`InvalidLeadError`."""
    email = unicodedata.normalize("NFC", raw.translate(_INVISIBLE)).strip().lower()
    if email.startswith("mailto:"):
        email = email[len("mailto:") :]
    local, at, domain = email.rpartition("@")
    if at and not domain.isascii():
        try:  # one spelling per domain (IDNA 2008, UTS 46): bücher.de is xn--bcher-kva.de
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except UnicodeError:  # idna.IDNAError is one
            raise InvalidLeadError(f"invalid email address: {raw.strip()[:100]!r}") from None
        email = f"{local}@{domain}"
    if len(email) > 320 or not _EMAIL.match(email):
        raise InvalidLeadError(f"invalid email address: {raw.strip()[:100]!r}")
    return email


def normalize_phone(raw: str, default_region: str = "US") -> str:
    """Return the E.164 form of a phone number or raise :class:`InvalidLeadError`.

    WhatsApp sends bare digits with the country code ("972987654321"); forms send anything
    ("(415) 555-0123", "+44 20 7946 0958", "0044…"). Digits-only input of 11+ digits is
    read as already carrying its country code.
    """
    text = raw.strip()
    if not text:
        raise InvalidLeadError("empty phone number")
    digits = re.sub(r"\D", "", text)
    if text.startswith("00"):
        text = "+" + digits[2:]
    elif not text.startswith("+") and len(digits) >= 11 and text == digits:
        text = "+" + digits
    try:
        number = _fold_quirks(phonenumbers.parse(text, default_region.upper()))
    except phonenumbers.NumberParseException as exc:
        raise InvalidLeadError(f"invalid phone number {raw.strip()[:40]!r}: {exc}") from None
    # "Possible" (right length for the country) rather than "valid": the bundled range
    # metadata lags real allocations, and WhatsApp numbers are real by definition.
    if not phonenumbers.is_possible_number(number):
        raise InvalidLeadError(f"invalid phone number: {raw.strip()[:40]!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _fold_quirks(number: phonenumbers.PhoneNumber) -> phonenumbers.PhoneNumber:
    """The one form of a mobile that its country writes two ways (see the module docstring)."""
    national = str(number.national_number)
    if number.country_code == 52 and len(national) == 11 and national.startswith("1"):
        number.national_number = int(national[1:])
    elif number.country_code == 55 and len(national) == 10 and national[2] in "6789":
        number.national_number = int(f"{national[:2]}9{national[2:]}")
    return number


def phone_from_wa_id(wa_id: str) -> str | None:
    """The E.164 phone of a WhatsApp id (``5215512345678`` → ``+525512345678``), or None
    when it does not read as a phone number (the caller keeps the WhatsApp id as the
    address and flags the lead instead of dropping the message)."""
    digits = wa_id.strip().lstrip("+")
    if not digits.isdigit() or not 7 <= len(digits) <= 15:
        return None
    try:
        return normalize_phone("+" + digits)
    except InvalidLeadError:
        return None


@lru_cache(maxsize=4096)
def timezone_for_phone(e164: str) -> str | None:
    """The IANA time zone of a phone number when its number range has exactly one."""
    zones = phone_timezone.time_zones_for_number(phonenumbers.parse(e164))
    if len(zones) == 1 and zones[0] != phone_timezone.UNKNOWN_TIMEZONE:
        return str(zones[0])
    return None
