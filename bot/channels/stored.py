"""The stored channel: accepts every message and keeps it only in the outbox.

Used for WhatsApp and email when they are not configured, so that the whole flow runs on a
fresh machine; what "was sent" is visible in the outbox table (and the sandbox endpoints).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from scheduler.delivery.outbox import Receipt


class StoredChannel:
    """A :class:`scheduler.delivery.outbox.Channel` that delivers nowhere and always succeeds."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def send(self, recipient: str, payload: Mapping[str, Any]) -> Receipt:
        """Accept the message; its id says where it went."""
        return Receipt(external_id=f"stored:{self.name}:{uuid.uuid4().hex}")
