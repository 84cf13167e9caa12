"""Inbound email: the webhook, parsing, classification, quote stripping and the effects."""
