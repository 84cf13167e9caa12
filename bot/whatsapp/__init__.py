"""WhatsApp, in and through: Meta's signature check, our own envelope parser, the webhook and
the sandbox; the inbox's conversation processor (stored inbound messages → one engine turn →
one reply: :mod:`~bot.whatsapp.processor`, with ``bursts``, ``turns``, ``sender``, ``effects``
and ``hooks``); the outbound payload schema the channel consumes, and click-to-chat
attribution."""
