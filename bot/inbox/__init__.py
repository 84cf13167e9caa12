"""The durable inbox's processor: inbound messages → one engine turn → one reply."""
