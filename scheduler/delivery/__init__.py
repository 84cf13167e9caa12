"""Delivery: the durable outbox, the channel protocol it sends through, group commit."""
