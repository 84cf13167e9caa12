"""Phone numbers their country writes two ways fold into one E.164 form (issue 12 item 1)."""

from __future__ import annotations

import pytest

from scheduler.pipeline.contacts import normalize_phone, phone_from_wa_id


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+52 1 55 1234 5678", "+525512345678"),  # Mexico: the old mobile "1"
        ("+52 55 1234 5678", "+525512345678"),
        ("+55 61 8123-4567", "+5561981234567"),  # Brazil: an 8-digit mobile gains its 9
        ("+55 61 98123-4567", "+5561981234567"),
        ("+55 61 3123-4567", "+556131234567"),  # a Brazilian landline keeps 8 digits
        ("+54 11 15 2345 6789", "+5491123456789"),  # Argentina: national 15 -> 9
    ],
)
def test_one_mobile_two_spellings_is_one_number(raw: str, expected: str) -> None:
    assert normalize_phone(raw, "US") == expected


@pytest.mark.parametrize(
    ("wa_id", "expected"),
    [
        ("5215512345678", "+525512345678"),
        ("5491123456789", "+5491123456789"),
        ("556181234567", "+5561981234567"),
        ("919876543210", "+919876543210"),
        ("4915123456789", "+4915123456789"),
        ("99912345678", None),  # no such country: no phone, the wa_id stays the address
        ("US.13491208655302741918", None),
    ],
)
def test_phone_from_wa_id(wa_id: str, expected: str | None) -> None:
    assert phone_from_wa_id(wa_id) == expected
