"""App keys of the WhatsApp inbound components (shared by the webhook and the sandbox)."""

from __future__ import annotations

from aiohttp import web

from bot.locks import KeyedLock
from bot.whatsapp.ingest import InboxWriter
from bot.whatsapp.processor import InboxProcessor

INBOX = web.AppKey("whatsapp_inbox", InboxProcessor)
LOCKS = web.AppKey("whatsapp_locks", KeyedLock)
WRITER = web.AppKey("whatsapp_inbox_writer", InboxWriter)
