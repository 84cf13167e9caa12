"""Currency symbols, codes and words, and amount multipliers ("k", "mil", "millones",
"milhões", "R$ 2 mi", and chat slang: "40 grand", "50 lucas", "2 palos", "3 dozen")."""

from __future__ import annotations

CURRENCY_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR"}
CURRENCY_WORDS = {
    "usd": "USD",
    "us$": "USD",
    "dollar": "USD",
    "dollars": "USD",
    "bucks": "USD",
    "dolar": "USD",
    "dolares": "USD",
    "dólar": "USD",
    "dólares": "USD",
    "eur": "EUR",
    "euro": "EUR",
    "euros": "EUR",
    "gbp": "GBP",
    "pound": "GBP",
    "pounds": "GBP",
    "quid": "GBP",
    "mxn": "MXN",
    "pesos": "MXN",
    "peso": "MXN",
    "cop": "COP",
    "ars": "ARS",
    "clp": "CLP",
    "r$": "BRL",
    "brl": "BRL",
    "reais": "BRL",
    # Brazilian chat: "50 paus", "100 pila" are reais
    "paus": "BRL",
    "pila": "BRL",
    "pilas": "BRL",
}
CUR_WORD = (
    r"r\$|us\$|usd|eur|gbp|mxn|cop|ars|clp|brl|reais|euros?|dollars?|d[oó]lar(?:es)?|bucks"
    r"|pounds?|quid|pesos?|paus|pilas?"
)
MULTS = {
    "k": 1e3,
    "thousand": 1e3,
    "grand": 1e3,
    "mil": 1e3,
    "m": 1e6,
    "mm": 1e6,
    "mn": 1e6,
    "million": 1e6,
    "millions": 1e6,
    "millon": 1e6,
    "millón": 1e6,
    "millones": 1e6,
    "milhão": 1e6,
    "milhao": 1e6,
    "milhões": 1e6,
    "milhoes": 1e6,
    "mi": 1e6,  # Brazilian chat: "R$ 2 mi"
    "mio": 1e6,
    "b": 1e9,
    "bn": 1e9,
    "billion": 1e9,
    # Latin American slang: a "luca" is a thousand (pesos), a "palo" a million
    "luca": 1e3,
    "lucas": 1e3,
    "palo": 1e6,
    "palos": 1e6,
    "dozen": 12,
}
MULT = (
    r"millones|millions|million|mill[oó]n|milh[aã]o|milh[oõ]es|thousand|billion|grand|lucas?"
    r"|palos?|dozen|mil|mio|mm|mn|bn|mi|k|m|b"
)
# Multipliers that only ever scale money: "40 grand" is an amount even with no currency named.
MONEY_MULTS = frozenset({"grand", "luca", "lucas", "palo", "palos"})


def currency_code(token: str | None) -> str | None:
    """The ISO code for a currency symbol or word ("€" → "EUR", "bucks" → "USD"), or None."""
    if not token:
        return None
    t = token.strip().lower()
    return CURRENCY_SYMBOLS.get(t) or CURRENCY_WORDS.get(t)
