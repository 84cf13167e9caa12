"""Enrichment of a lead: the offline step always, a paid provider when one is configured.

:func:`enrich` returns the JSON stored on ``lead.enrichment``. A provider's failure is
logged and recorded (``provider_error``) and never stops the lead's first touch: the
offline facts are enough to qualify and reply.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from dialogs.errors import LeadbotError
from scheduler.intake.enrichment.offline import OFFLINE_VERSION, enrich_offline, seniority

log = logging.getLogger("leadbot.enrichment")

# What a provider may fill in, and where it lands in the stored JSON.
PROVIDER_FIELDS = ("company", "industry", "employees", "title", "seniority", "country")


class EnrichmentError(LeadbotError):
    """A provider call failed; ``is_transient`` says whether trying later may work."""

    def __init__(self, message: str, *, is_transient: bool, code: str = "enrichment") -> None:
        super().__init__(message)
        self.is_transient = is_transient
        self.code = code


class EnrichmentProvider(Protocol):
    """A (paid) enrichment API. ``name`` is stored with the facts it returned."""

    name: str

    async def enrich(self, email: str, domain: str, name: str | None) -> dict[str, Any] | None:
        """Facts about the person and company (keys of :data:`PROVIDER_FIELDS`), or None
        when the provider knows nothing. Raises :class:`EnrichmentError`."""
        ...


async def enrich(
    *,
    email: str | None,
    phone: str | None,
    role: str | None,
    company: str | None,
    name: str | None,
    provider: EnrichmentProvider | None = None,
) -> dict[str, Any]:
    """Offline facts, merged with the provider's (the lead's own words win over both)."""
    out = enrich_offline(email=email, phone=phone, role=role, company=company)
    domain = out.get("company_domain")
    if provider is None or not email or not domain:
        return out  # a provider knows nothing useful about gmail.com or a throwaway box
    try:
        found = await provider.enrich(email, domain, name)
    except EnrichmentError as exc:
        log.warning("enrichment by %s failed for a lead: %s", provider.name, exc)
        out["provider_error"] = {
            "provider": provider.name,
            "code": exc.code,
            "message": str(exc)[:300],
        }
        return out
    out["provider"] = provider.name
    if not found:
        return out
    for key in PROVIDER_FIELDS:
        value = found.get(key)
        if value in (None, "") or (key == "company" and company):
            continue
        out[key] = value
    if role is None and found.get("title") and not found.get("seniority"):
        out["seniority"] = seniority(str(found["title"]))
    return out


__all__ = [
    "OFFLINE_VERSION",
    "PROVIDER_FIELDS",
    "EnrichmentError",
    "EnrichmentProvider",
    "enrich",
    "enrich_offline",
]
