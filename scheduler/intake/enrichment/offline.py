"""Offline enrichment: what an email address, a phone number and a job title say by themselves.

No network, no paid API: the company guessed from the email's domain
(``acme-robotics.io`` → "Acme Robotics"), whether the address is a free mailbox (gmail,
outlook, …) or a disposable one (mailinator, …) from the lists shipped beside this module,
the phone's country and time zone (``phonenumbers``), and a seniority bucket from the role.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any, Literal

import phonenumbers

from scheduler.pipeline.contacts import timezone_for_phone

OFFLINE_VERSION = "offline-2026-11-1"

Seniority = Literal["c-level", "vp", "head/director", "manager", "individual"]

# Public suffixes with two labels that are common in B2B mail. Registrable domain =
# one label more than the suffix. (`publicsuffixlist` would cover every suffix.)
_TWO_LABEL_SUFFIXES = frozenset(
    f"{second}.{tld}"
    for tld, seconds in {
        "uk": ("co", "org", "ac", "gov", "ltd", "plc", "me"),
        "au": ("com", "net", "org", "edu", "gov"),
        "nz": ("co", "org", "net", "ac"),
        "za": ("co", "org", "net"),
        "jp": ("co", "ne", "or", "ac"),
        "kr": ("co", "or"),
        "in": ("co", "net", "org", "firm"),
        "br": ("com", "net", "org"),
        "mx": ("com", "org"),
        "ar": ("com",),
        "tr": ("com",),
        "cn": ("com", "net", "org"),
        "hk": ("com",),
        "sg": ("com",),
        "il": ("co", "org"),
        "es": ("com",),
    }.items()
    for second in seconds
)
_MAIL_HOSTS = ("mail", "email", "smtp", "mx", "e", "m")

# Order matters: the first bucket whose pattern matches wins ("VP Sales Manager" is a VP,
# "Vice President" is not a president).
_NOT_SENIOR = re.compile(r"\b(assistant|intern|trainee|working student|werkstudent)\b")
_SENIORITY: tuple[tuple[Seniority, re.Pattern[str]], ...] = (
    ("vp", re.compile(r"\b(vp|svp|evp|avp|vice[ -]president)\b")),
    (
        "c-level",
        re.compile(
            r"\b(c[eotfmi]o|ciso|cro|cpo|chief|founder|co-?founder|owner|president|"
            r"managing director|general manager|gesch[aä]ftsf[uü]hrer|inhaber|gr[uü]nder|"
            r"director general|directeur g[eé]n[eé]ral|pdg)\b"
        ),
    ),
    ("head/director", re.compile(r"\b(head|director|directora?|directeur|leiter|leiterin)\b")),
    ("manager", re.compile(r"\b(manager|lead|team lead|supervisor|coordinator|gerente)\b")),
)


@cache
def _domains(name: str) -> frozenset[str]:
    text = resources.files(__package__).joinpath(name).read_text("utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and line[0] != "#"
    )


def free_mail_domains() -> frozenset[str]:
    """The shipped list of free mailbox providers."""
    return _domains("free_mail.txt")


def disposable_domains() -> frozenset[str]:
    """The shipped list of disposable mailbox providers."""
    return _domains("disposable.txt")


def registrable_domain(domain: str) -> str:
    """``mail.acme.co.uk`` → ``acme.co.uk``; ``eu.acme.com`` → ``acme.com``."""
    labels = [x for x in domain.lower().strip(".").split(".") if x]
    keep = 3 if len(labels) >= 3 and ".".join(labels[-2:]) in _TWO_LABEL_SUFFIXES else 2
    return ".".join(labels[-keep:])


def company_from_domain(domain: str) -> str | None:
    """A company name guessed from a domain: ``acme-robotics.io`` → "Acme Robotics"."""
    base = registrable_domain(domain)
    label = base.split(".")[0] if "." in base else ""
    if not label or label in _MAIL_HOSTS:
        return None
    words = [w for w in re.split(r"[-_]+", label) if w]
    # Short all-letter labels are usually acronyms (ibm.com → IBM), not words.
    if len(words) == 1 and len(label) <= 3 and label.isalpha():
        return label.upper()
    return " ".join(w if w.isdigit() else w.capitalize() for w in words) or None


def is_in_list(domain: str, listed: frozenset[str]) -> bool:
    """Whether ``domain`` or any parent domain of it is listed (``x.mailinator.com`` too)."""
    labels = domain.lower().strip(".").split(".")
    return any(".".join(labels[i:]) in listed for i in range(len(labels) - 1))


def seniority(role: str | None) -> Seniority | None:
    """The seniority bucket of a job title; None when there is no title."""
    if not role or not role.strip():
        return None
    text = role.lower()
    if _NOT_SENIOR.search(text):
        return "individual"
    for bucket, pattern in _SENIORITY:
        if pattern.search(text):
            return bucket
    return "individual"


def phone_facts(e164: str | None) -> dict[str, str | None] | None:
    """Country (ISO alpha-2) and time zone of an E.164 number; None without a number."""
    if not e164:
        return None
    try:
        number = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return None
    return {
        "country": phonenumbers.region_code_for_number(number),
        "timezone": timezone_for_phone(e164),
    }


def enrich_offline(
    *, email: str | None, phone: str | None, role: str | None, company: str | None
) -> dict[str, Any]:
    """Everything the inputs say by themselves, as the JSON stored on ``lead.enrichment``.

    ``company`` is what the lead typed; the domain's guess never overrides it, and a free
    or disposable mailbox says nothing about the employer.
    """
    out: dict[str, Any] = {"version": OFFLINE_VERSION}
    if email and "@" in email:
        domain = email.rsplit("@", 1)[1].lower()
        free = is_in_list(domain, free_mail_domains())
        disposable = is_in_list(domain, disposable_domains())
        out |= {
            "email_domain": domain,
            "company_domain": None if free or disposable else registrable_domain(domain),
            "free_mail": free,
            "disposable": disposable,
            "company_guess": None if free or disposable else company_from_domain(domain),
        }
    out["company"] = company or out.get("company_guess")
    out["phone"] = phone_facts(phone)
    out["seniority"] = seniority(role)
    return out
