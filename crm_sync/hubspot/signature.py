"""HubSpot webhook signatures, v3 (``X-HubSpot-Signature-v3``).

``base64(HMAC-SHA256(client_secret, method + uri + raw_body + timestamp))`` where ``uri`` is
the full URL HubSpot called (scheme, host, path, query) with a few percent-escapes decoded
the way HubSpot decodes them before signing, and ``timestamp`` is
``X-HubSpot-Request-Timestamp`` (milliseconds). A timestamp more than five minutes away is
refused (a replay). Checked over the exact raw bytes, before anything is parsed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from dialogs.errors import InputError

SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
TOLERANCE_MS = 5 * 60 * 1000
# HubSpot decodes these in the URI before signing (its docs list them).
_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}


class SignatureError(InputError):
    """A webhook whose signature is missing, stale or wrong; ``status`` is the answer."""

    def __init__(self, message: str, *, status: int, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def sign(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """The v3 signature of one request."""
    for escaped, char in _DECODED.items():
        uri = uri.replace(escaped, char).replace(escaped.lower(), char)
    source = method.upper().encode() + uri.encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), source, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify(
    secret: str,
    *,
    method: str,
    uri: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now_ms: int,
) -> None:
    """Return when the request is HubSpot's and fresh; :class:`SignatureError` otherwise
    (401 missing or unreadable, 403 stale or wrong). Constant-time comparison."""
    if not signature or not timestamp:
        raise SignatureError(
            f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}",
            status=401,
            code="signature_missing",
        )
    if not (timestamp.isascii() and timestamp.isdigit()):  # "²".isdigit() is True
        raise SignatureError(
            f"{TIMESTAMP_HEADER} is not milliseconds", status=401, code="signature_malformed"
        )
    if abs(now_ms - int(timestamp)) > TOLERANCE_MS:
        raise SignatureError(
            f"{TIMESTAMP_HEADER} is more than 5 minutes away", status=403, code="signature_expired"
        )
    expected = sign(secret, method, uri, body, timestamp)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise SignatureError(
            f"{SIGNATURE_HEADER} does not match", status=403, code="bad_signature"
        )


# The characters HubSpot decodes in the request URI before signing it (its v3 signature
# docs); everything else stays as the client sent it.
_DECODED = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
    "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}  # fmt: skip
_ENCODED = re.compile("|".join(_DECODED), re.IGNORECASE)


def signed_uri(base: str, raw_path: str) -> str:
    """The URI HubSpot signed: ``base`` (the public origin) and the request's raw path and
    query, with the characters HubSpot decodes decoded (and no others)."""
    return base + _ENCODED.sub(lambda m: _DECODED[m.group(0).upper()], raw_path)
