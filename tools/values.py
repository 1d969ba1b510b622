"""Tolerant parsers for marketplace values: star ratings, prices, counts and flags.

Feeds (Axesso, a shop's CSV) write the same value many ways: ``4.6``, ``"4.6 out of 5 stars"``,
``"4,6 von 5 Sternen"``, ``"$1,299.99"``, ``"1.234"``. Each parser returns a clean number, or ``None`` when
the value is missing or makes no sense, and never raises: one odd field must not cost the whole listing.
"""

from __future__ import annotations

import math
import re

_NUMBER = r"(\d+(?:[.,]\d+)?)"
#: "4.6 out of 5 stars", "4,6 von 5 Sternen", "4,6 sur 5 étoiles", "4,6 de 5 estrellas", "4,6 su 5 stelle"
_RATING_FIRST = re.compile(_NUMBER + r"\s*(?:out of|von|sur|de|su|/)\s*5\b", re.IGNORECASE)
#: Japanese puts the scale first: "5つ星のうち4.6".
_RATING_JA = re.compile(r"5つ星のうち\s*" + _NUMBER)
_BARE_NUMBER = re.compile(r"^\s*" + _NUMBER + r"\s*$")
_DIGITS = re.compile(r"[\d.,]+")


def _to_float(text: str) -> float | None:
    """A decimal written with '.' or ',' ("4,6" -> 4.6)."""
    try:
        return float(text.replace(",", "."))
    except ValueError:
        return None


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int with hundreds of digits (JSON allows it)
        return None
    return number if math.isfinite(number) else None


def parse_rating(value: object) -> float | None:
    """A star rating in [0, 5] from a number or a phrase like "4.6 out of 5 stars"."""
    rating = _finite(value)
    if rating is None and isinstance(value, str):
        match = _RATING_FIRST.search(value) or _RATING_JA.search(value) or _BARE_NUMBER.match(value)
        rating = _to_float(match.group(1)) if match else None
    if rating is None or not 0 <= rating <= 5:
        return None
    return round(rating, 2)


def parse_count(value: object) -> int | None:
    """A non-negative count (reviews) from an int, a whole float, or text like "1,234" or "1.234"."""
    number = _finite(value)
    if number is None and isinstance(value, str):
        digits = re.sub(r"[\s,.\u00a0\u202f']", "", value.strip())  # thousands separators of any locale
        # isdecimal, not isdigit: "²" is a digit that float() refuses; a 400-digit count is infinite.
        number = _finite(float(digits)) if digits.isdecimal() else None
    if number is None or number < 0 or number != int(number):
        return None
    return int(number)


def parse_price(value: object) -> float | None:
    """A positive price from a number or text like "$1,299.99" / "1.299,99 €"; 0 means unknown."""
    price = _finite(value)
    if price is None and isinstance(value, str):
        match = _DIGITS.search(value)
        price = _price_from_text(match.group(0)) if match else None
    price = None if price is None else round(price, 2)
    return price if price is not None and price > 0 else None  # 0.004 rounds to 0: unknown too


def _price_from_text(text: str) -> float | None:
    """Read "1,299.99", "1.299,99", "1299", "12,50": the last separator followed by 1-2 digits is decimal."""
    text = text.strip(".,")
    last = max(text.rfind("."), text.rfind(","))
    if last != -1 and 1 <= len(text) - last - 1 <= 2:
        whole, decimals = text[:last], text[last + 1 :]
    else:
        whole, decimals = text, ""
    whole = whole.replace(".", "").replace(",", "")
    if not whole.isdecimal() and not (whole == "" and decimals):
        return None
    return _finite(float(f"{whole or 0}.{decimals or 0}"))


def parse_bool(value: object) -> bool:
    """A flag from a bool, 0/1 or "true"/"yes"; anything else is False."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value == 1
    if isinstance(value, str):
        return value.strip().lower() in {"true", "yes", "1", "y"}
    return False
