"""Signed tokens: round trip, bound to key and purpose, tamper-evident, URL-safe."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from bot.http.signing import BadSignature, Signer, sign, verify

KEY = "k" * 32
data_strategy = st.dictionaries(
    st.text(max_size=10),
    st.one_of(st.integers(), st.text(max_size=30), st.none(), st.booleans()),
    max_size=5,
)


@given(data_strategy)
def test_round_trip_and_url_safe(data: dict[str, object]) -> None:
    token = sign("unsubscribe", data, secret=KEY)
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)
    assert verify("unsubscribe", token, secret=KEY) == data


def test_bound_to_purpose_and_key() -> None:
    token = sign("unsubscribe", {"lead": 1}, secret=KEY)
    with pytest.raises(BadSignature):
        verify("approve", token, secret=KEY)
    with pytest.raises(BadSignature):
        verify("unsubscribe", token, secret="other")
    assert Signer(SecretStr(KEY)).verify("unsubscribe", token) == {"lead": 1}


@pytest.mark.parametrize("position", range(0, 60, 7))
def test_any_altered_character_is_rejected(position: int) -> None:
    token = sign("approve", {"touch": 42, "by": "rep@x.com"}, secret=KEY)
    char = token[position]
    altered = token[:position] + ("A" if char != "A" else "B") + token[position + 1 :]
    with pytest.raises(BadSignature):
        verify("approve", altered, secret=KEY)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "é.x", "x" * 5000, ".", "e30.!!!"])
def test_malformed_tokens(token: str) -> None:
    with pytest.raises(BadSignature):
        verify("approve", token, secret=KEY)


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="SECRET_KEY"):
        sign("approve", {}, secret="")
    with pytest.raises(ValueError):
        Signer(SecretStr(""))


def _variants(token: str) -> list[str]:
    """Other spellings of ``token`` that lenient base64 decoding reads as the same bytes."""
    payload, mac = token.split(".")
    last = mac[-1]
    # The last character of a 43-character MAC carries 2 unused low bits.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    sibling = alphabet[alphabet.index(last) ^ 1]
    return [
        f"{payload}.{mac}=",  # padding
        f"{payload}.{mac[:10]}!{mac[10:]}",  # a character outside the alphabet
        f"{payload}.{mac[:10]}+{mac[10:]}",  # the standard (not URL-safe) alphabet
        f"{payload}.{mac[:-1]}{sibling}",  # non-canonical last character
        f"{payload}=.{mac}",
        f"{payload[:4]}*{payload[4:]}.{mac}",
    ]


@pytest.mark.parametrize("index", range(6))
def test_only_the_canonical_spelling_verifies(index: int) -> None:
    token = sign("approve", {"touch": 42}, secret=KEY)
    assert len(token.split(".")[1]) == 43
    with pytest.raises(BadSignature):
        verify("approve", _variants(token)[index], secret=KEY)
