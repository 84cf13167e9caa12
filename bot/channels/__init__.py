"""Channel adapters: how the service reaches people (WhatsApp, email), one module each.

``build_channels`` picks each channel's backend from the settings: the real provider when it
is configured, the stored channel (messages kept in the outbox, nothing leaves the machine)
when it is not, so the embedded default runs with no credentials at all. It also sets up the
signed outbound events (:mod:`scheduler.pipeline.outbound_events`): endpoints and channel.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.channels.email import EmailChannel
from bot.channels.events import configure_events
from bot.channels.stored import StoredChannel
from bot.channels.subscribers import conversions_config
from bot.channels.whatsapp import LeadServiceWindow, WhatsAppChannel
from bot.crm.hubspot import hubspot_channel, hubspot_config
from bot.settings import Settings
from crm_sync.conversions_channel import ConversionsChannel
from crm_sync.events_channel import EventsChannel
from crm_sync.hubspot.channel import CHANNEL as HUBSPOT
from scheduler.delivery.outbox import Channel
from scheduler.pipeline.outbound_events import CHANNEL as EVENTS
from scheduler.store import Sessions


def build_channels(settings: Settings, sessions: Sessions | None = None) -> dict[str, Channel]:
    """The channels this service sends through, keyed by the outbox's channel names.
    ``sessions`` is the stage store, for channels that check it (email: suppressions, caps)."""
    channels: dict[str, Channel] = {
        "whatsapp": StoredChannel("whatsapp"),
        "email": StoredChannel("email"),
    }
    if settings.smtp_url.get_secret_value() and sessions is not None:
        channels["email"] = EmailChannel.from_settings(settings, sessions)
    if settings.whatsapp_phone_id and settings.whatsapp_token.get_secret_value():
        channels["whatsapp"] = WhatsAppChannel(
            phone_id=settings.whatsapp_phone_id,
            token=settings.whatsapp_token.get_secret_value(),
            api_url=settings.whatsapp_api_url,
            template=settings.whatsapp_template,
            template_language=settings.whatsapp_template_language,
            window=LeadServiceWindow(sessions) if sessions is not None else None,
            rate=settings.whatsapp_rate,
            timeout=settings.whatsapp_timeout,
        )
    # HubSpot sync (README "HubSpot"): the settings checked here, at startup.
    hubspot = hubspot_config(settings)
    if hubspot is not None and sessions is not None:
        channels[HUBSPOT] = hubspot_channel(hubspot, sessions)
    # Signed outbound events: the emit points (the stage machine, bookings, hand-offs) learn
    # which endpoints want which kinds; the channel holds the secrets and posts.
    endpoints = configure_events(settings)
    if endpoints:
        timeout = settings.events_webhook_timeout
        channels[EVENTS] = EventsChannel(endpoints, timeout=timeout)
    # Meta's Conversions API (the ad loop): its subscriber is registered with the others above.
    conversions = conversions_config(settings)
    if conversions is not None:
        channels[ConversionsChannel.name] = ConversionsChannel(
            conversions, timeout=settings.meta_capi_timeout
        )
    return channels


async def close_channels(channels: Mapping[str, Channel]) -> None:
    """Release what channels hold open (HTTP clients); called on the app's shutdown."""
    for channel in channels.values():
        aclose = getattr(channel, "aclose", None)
        if aclose is not None:
            await aclose()
