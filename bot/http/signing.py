"""Signed, URL-safe tokens: small JSON objects a link carries and the server can trust later.

Used for the one-click unsubscribe links in outgoing email and for one-click approval links.
A token is ``<payload>.<mac>``, both base64url without padding, where the payload is the
compact JSON of ``data`` and the MAC is HMAC-SHA256 over ``purpose`` and the payload, keyed
with ``LEADBOT_SECRET_KEY``. Binding the purpose into the MAC means a token minted for one
purpose ("unsubscribe") is rejected for another ("approve"), even with identical data.

Tokens do not expire on their own (an unsubscribe link must keep working for as long as the
mail sits in an inbox); a caller that wants expiry puts a timestamp in ``data`` and checks it.
The data is readable by anyone holding the token: sign ids, never secrets.

Usage::

    token = sign("unsubscribe", {"lead": 42, "email": "jane@acme.com"}, secret=key)
    data = verify("unsubscribe", token, secret=key)   # raises BadSignature if tampered
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from dialogs.errors import InputError

Secret = str | bytes | SecretStr

# Long enough for any id we sign, short enough that a junk URL is rejected before any work.
MAX_TOKEN_LENGTH = 2048
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class BadSignature(InputError, ValueError):
    """The token is malformed, was signed with another key or purpose, or was altered."""


def _key(secret: Secret) -> bytes:
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    if not key:
        # An empty key would make every token forgeable; refuse instead of signing weakly.
        raise ValueError("signing needs a non-empty secret (LEADBOT_SECRET_KEY)")
    return key


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict base64url: only the alphabet, no padding, and the one canonical spelling.

    ``base64.urlsafe_b64decode`` skips characters outside the alphabet and ignores the
    unused low bits of the last character, so many strings would decode to one token.
    """
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise BadSignature("malformed token")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64encode(raw) != text:
        raise BadSignature("malformed token")
    return raw


def _mac(key: bytes, purpose: str, payload: str) -> bytes:
    # The NUL separator keeps ("ab", "c…") and ("a", "bc…") apart.
    message = purpose.encode("utf-8") + b"\x00" + payload.encode("ascii")
    return hmac.new(key, message, hashlib.sha256).digest()


def sign(purpose: str, data: Mapping[str, Any], *, secret: Secret) -> str:
    """A token carrying ``data`` (JSON-serialisable) that only ``verify(purpose, …)`` accepts."""
    if not purpose:
        raise ValueError("purpose must not be empty")
    body = json.dumps(dict(data), separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    payload = _b64encode(body.encode("utf-8"))
    return f"{payload}.{_b64encode(_mac(_key(secret), purpose, payload))}"


def verify(purpose: str, token: str, *, secret: Secret) -> dict[str, Any]:
    """The data inside ``token``; raises :class:`BadSignature` unless it was made by
    :func:`sign` with the same ``purpose`` and ``secret`` and left unchanged."""
    key = _key(secret)
    if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise BadSignature("malformed token")
    payload, mac_text = token.split(".")
    try:
        mac = _b64decode(mac_text)
    except (binascii.Error, ValueError) as exc:
        raise BadSignature("malformed token") from exc
    # Compare MACs before parsing anything the sender controls.
    if not _B64URL.fullmatch(payload) or not hmac.compare_digest(mac, _mac(key, purpose, payload)):
        raise BadSignature("bad signature")
    try:
        data = json.loads(_b64decode(payload).decode("utf-8"))
    except (binascii.Error, ValueError) as exc:  # JSONDecodeError/UnicodeError are ValueErrors
        raise BadSignature("malformed payload") from exc
    if not isinstance(data, dict):
        raise BadSignature("malformed payload")
    return data


class Signer:
    """:func:`sign` / :func:`verify` bound to one secret, for passing to components."""

    def __init__(self, secret: Secret) -> None:
        self._secret = secret
        _key(secret)  # fail at construction, not at the first link

    def sign(self, purpose: str, data: Mapping[str, Any]) -> str:
        """See :func:`sign`."""
        return sign(purpose, data, secret=self._secret)

    def verify(self, purpose: str, token: str) -> dict[str, Any]:
        """See :func:`verify`."""
        return verify(purpose, token, secret=self._secret)
