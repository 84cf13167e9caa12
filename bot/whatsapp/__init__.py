"""WhatsApp Cloud API inbound: signature check, our own envelope parser, the webhook, the
outbound payload schema the channel consumes, and click-to-chat attribution."""
