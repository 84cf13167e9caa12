"""One person, one lead: spellings of one address that used to make two leads."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scheduler.errors import InvalidLeadError
from scheduler.pipeline.contacts import normalize_email
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.store.models import utcnow

Sessions = async_sessionmaker[AsyncSession]


@pytest.mark.parametrize(
    ("variants", "canonical"),
    [
        (
            ["ana@bücher.de", "ana@xn--bcher-kva.de", "Ana@BÜCHER.DE", "ana@bu\u0308cher.de"],
            "ana@xn--bcher-kva.de",
        ),
        (["ana@пример.рф", "ana@xn--e1afmkfd.xn--p1ai"], "ana@xn--e1afmkfd.xn--p1ai"),
        (
            [
                "a\u200bna@acme.com",
                "ana@ac\u200dme.com",
                "\ufeffana@acme.com\u2060",
                "an\u00ada@acme.com",
                "ana@acme.com",
            ],
            "ana@acme.com",
        ),
        # IDNA 2008: ß is its own letter (straße.de is not strasse.de).
        (["ana@straße.de", "ana@xn--strae-oqa.de"], "ana@xn--strae-oqa.de"),
    ],
)
def test_variants_of_one_address_normalize_to_one(variants: list[str], canonical: str) -> None:
    assert {normalize_email(v) for v in variants} == {canonical}


@pytest.mark.parametrize("raw", ["ana@\ud800.de", "ana@-bü.de", "ana@bü..de", "ana@\u0301.de"])
def test_unusable_international_domains_are_refused(raw: str) -> None:
    with pytest.raises(InvalidLeadError, match="email"):
        normalize_email(raw)


async def test_zero_width_and_idn_variants_are_one_lead(sessions: Sessions) -> None:
    ids = set()
    for email in ("ana@bücher.de", "ana@xn--bcher-kva.de", "a\u200bna@b\u00fccher.de"):
        async with sessions.begin() as session:
            result = await intake(session, LeadIn(email=email), default_region="US", now=utcnow())
            ids.add(result.lead.id)
    assert len(ids) == 1
