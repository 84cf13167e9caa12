"""The HTTP service's shared parts and the JSON API: app keys, errors, input checks, auth,
metrics, health, security headers, signed links, approvals, privacy and follow-up wiring."""
