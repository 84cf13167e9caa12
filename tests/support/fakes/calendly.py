"""Calendly's side of its webhooks: realistic bodies and their signatures.

Bodies come from ``tests/data/calendly/*.json`` (the shape of production captures; keys
sorted, as Calendly sends them). ``LEAD_TOKEN`` in them stands for the lead's token that our
booking links put in ``utm_content``. The signature is made exactly as Calendly makes it:
``t=<unix>,v1=hex(HMAC_SHA256(key, f"{t}." + raw_body))``, over the bytes that are posted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "data" / "calendly"
SIGNING_KEY = "5mEzn9C-I28UtwOjZJtFoob0sAAFZ95GbZkqj4y3i0I"


def load_event(name: str, *, token: str | None = None, email: str | None = None) -> dict[str, Any]:
    """The event in ``tests/data/calendly/<name>.json``, for the lead with ``token``
    (``None`` removes the utm_content) and invitee ``email`` when given."""
    body: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text("utf-8"))
    tracking = body["payload"].get("tracking")
    if tracking is not None and tracking.get("utm_content") == "LEAD_TOKEN":
        tracking["utm_content"] = token
    if email is not None:
        body["payload"]["email"] = email
    return body


def signature(body: bytes, key: str = SIGNING_KEY, timestamp: int | None = None) -> str:
    """The ``Calendly-Webhook-Signature`` header for ``body``."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(key.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def signed(
    body: dict[str, Any], key: str = SIGNING_KEY, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """Serialize ``body`` like Calendly (sorted keys) and sign it: (raw bytes, headers)."""
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "Calendly-Webhook-Signature": signature(raw, key, timestamp),
    }
    return raw, headers
