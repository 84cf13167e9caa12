"""Calendly: the webhook and what a booking event changes."""
