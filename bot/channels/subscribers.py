"""The other consumers of outbound events the settings turn on (CRM mirror, ad platform).

Each is a :class:`scheduler.pipeline.outbound_events.Subscriber` from :mod:`crm_sync`: it turns
the facts the pipeline emits (a new lead, a stage move, a booking, a note) into outbox rows
of its own channel, in the transaction of the change. Registered by
:func:`bot.channels.events.configure_events`, so every process that changes leads (the
service, ``leadbot leads import``) feeds them.
"""

from __future__ import annotations

from bot.crm.hubspot import hubspot_subscriber
from bot.settings import Settings
from scheduler.pipeline.outbound_events import Subscriber


def event_subscribers(settings: Settings) -> list[Subscriber]:
    """The subscribers the settings configure (none on the embedded defaults)."""
    subscribers: list[Subscriber] = []
    hubspot = hubspot_subscriber(settings)  # the HubSpot sync (README "HubSpot")
    if hubspot is not None:
        subscribers.append(hubspot)
    return subscribers
