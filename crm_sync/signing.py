"""Standard Webhooks signing (https://www.standardwebhooks.com): the headers of one delivery.

``webhook-signature: v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`` with the
secret given as ``whsec_<base64>``. The arithmetic is the reference library's
(``standardwebhooks``), so receivers verifying with any Standard Webhooks library agree.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from standardwebhooks.webhooks import Webhook

from dialogs.errors import ConfigError

SECRET_PREFIX = "whsec_"


class SecretError(ConfigError):
    """A webhook secret that is not ``whsec_`` + base64 of at least 24 bytes."""


def check_secret(secret: str) -> str:
    """``secret`` if it is a usable Standard Webhooks secret, else :class:`SecretError`."""
    if not secret.startswith(SECRET_PREFIX):
        raise SecretError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except ValueError as exc:
        raise SecretError("a webhook secret is whsec_ followed by base64") from exc
    if len(key) < 24:
        raise SecretError("a webhook secret needs at least 24 random bytes (192 bits)")
    return secret


def new_secret() -> str:
    """A fresh ``whsec_`` secret of 32 random bytes (for operators setting up an endpoint)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signed_headers(secret: str, msg_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of ``body`` sent as message ``msg_id`` at ``at``."""
    signature = Webhook(secret).sign(msg_id=msg_id, timestamp=at, data=body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }
