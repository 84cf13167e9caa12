"""``X-Hub-Signature-256``: Meta's HMAC-SHA256 of the raw webhook body with the app secret.

Checked over the exact bytes received, before anything is parsed; never over a re-serialized
body (key order and whitespace would differ).
"""

from __future__ import annotations

import hashlib
import hmac

from bot.http.errors import WebhookSignatureError

HEADER = "X-Hub-Signature-256"
PREFIX = "sha256="


def sign(app_secret: str, body: bytes) -> str:
    """The header value Meta sends for ``body``: ``sha256=<hex digest>``."""
    return PREFIX + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify(app_secret: str, body: bytes, header: str | None) -> None:
    """Return when ``header`` signs ``body`` with ``app_secret``; raise
    :class:`~bot.http.errors.WebhookSignatureError`.

    The comparison is constant-time (``hmac.compare_digest``) so the digest cannot be guessed
    byte by byte from response times.
    """
    if not header:
        raise WebhookSignatureError(
            f"missing {HEADER} header", status=401, code="signature_missing"
        )
    given = header.strip()
    if given.lower().startswith(PREFIX):
        given = given[len(PREFIX) :]
    expected = sign(app_secret, body)[len(PREFIX) :]
    if not hmac.compare_digest(given.lower().encode(), expected.encode()):
        raise WebhookSignatureError(
            f"{HEADER} does not match the body", status=403, code="bad_signature"
        )
