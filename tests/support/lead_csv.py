"""Synthetic lead CSV files for the import tests and benchmark.

Rows are realistic (names, company domains, phones in assorted formats, UTM columns) with a
chosen share of bad rows, of duplicates and of people reached through a shared company
switchboard phone, so the expected import report is known exactly.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

HEADER = [
    "Full Name",
    "Email Address",
    "Phone Number",
    "Company",
    "Job Title",
    "utm_source",
    "utm_campaign",
    "notes",
]
FIRST = ["Dana", "Omar", "Li", "Sofia", "Jonas", "Priya", "Mateo", "Aiko", "Noa", "Kwame"]
LAST = ["Levi", "Haddad", "Chen", "Rossi", "Berg", "Nair", "García", "Sato", "Cohen", "Mensah"]
BAD_ROWS = [
    ("bad email", "not-an-email", ""),
    ("no contact", "", ""),
    ("bad phone", "", "12"),
]


@dataclass(frozen=True)
class Expected:
    """What importing the generated file into an empty database must report."""

    created: int
    duplicates: int
    rejected: int
    rejected_lines: tuple[int, ...]
    # Rows whose switchboard phone an earlier row's lead keeps (created, and reported).
    conflicts: int = 0


def write_leads_csv(
    path: Path,
    rows: int,
    *,
    bad_share: float = 0.01,
    dup_share: float = 0.0,
    seed: int = 7,
    switchboard_share: float = 0.0,
    switchboards: int = 40,
) -> Expected:
    """Write ``rows`` data rows to ``path``; return the report an import must give.

    ``switchboard_share`` of the good rows give one of ``switchboards`` company phones
    instead of their own (different people, different emails, one number)."""
    rng = random.Random(seed)
    created = duplicates = conflicts = 0
    used: set[int] = set()
    rejected_lines: list[int] = []
    emails: list[str] = []
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(HEADER)
        line = 2  # the header is line 1; good rows below span two lines (a quoted newline)
        for index in range(rows):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            roll = rng.random()
            if roll < bad_share:
                _, email, phone = BAD_ROWS[index % len(BAD_ROWS)]
                writer.writerow([f"{first} {last}", email, phone, "", "", "", "", ""])
                rejected_lines.append(line)
                line += 1
            elif roll < bad_share + dup_share and emails:
                writer.writerow([first, rng.choice(emails).upper(), "", "", "", "", "", ""])
                duplicates += 1
                line += 1
            else:
                email = f"{first.lower()}.{index}@company{index % 997}.example"
                phone = f"+1 (415) {index // 10000 % 1000:03d}-{index % 10000:04d}"
                # (no draw when unused: the files other tests expect stay the same)
                if switchboard_share and rng.random() < switchboard_share:
                    board = index % switchboards
                    phone = f"+1 212-555-{board:04d}"
                    conflicts += board in used
                    used.add(board)
                emails.append(email)
                writer.writerow(
                    [
                        f"{first} {last}",
                        email,
                        phone,
                        f"Company {index % 997}",
                        "Head of Ops",
                        rng.choice(["fb", "google", "linkedin"]),
                        "spring",
                        'said "hi",\nthen left',
                    ]
                )
                created += 1
                line += 2
    return Expected(
        created, duplicates, len(rejected_lines), tuple(rejected_lines), conflicts=conflicts
    )
