"""HubSpot sync: leads mirrored as contacts, deals and notes; deal stage changes back.

One module per idea: :mod:`.stage_map` (our seven stages ↔ the pipeline's stage ids),
:mod:`.rate_limit` (HubSpot's 10-second and daily windows), :mod:`.client` (a thin aiohttp
client over the CRM v3 wire format), :mod:`.records` (a lead as contact, deal and note
properties), :mod:`.channel` (the outbox channel that syncs a lead), :mod:`.notes` (each
note pushed once), :mod:`.subscriber`
(events → sync rows), :mod:`.signature` (webhook v3 signatures) and :mod:`.inbound` (deal
stage changes → the stage machine).

Why not ``hubspot-api-client``: it is generated, synchronous code (urllib3), so every call
would block the event loop or need a thread per request; its retry middleware sleeps inside
the call (hiding 429s from the outbox, which must defer the row instead), and it offers no
hook for the outbox's outcomes (surely not sent / maybe sent). We use six endpoints; a thin
aiohttp client over the documented wire format is smaller than the adapter around the SDK.
"""
