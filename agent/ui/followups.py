"""Tell a follow-up ("cheaper", "under $20", "more garden trowels") from a new need.

Only short, unmistakable phrasings count as follow-ups; anything else starts over as a new need. "more X"
is a follow-up only when X names a product type of the last answer, so "more storage for my tiny flat"
stays a need.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz

from agent.pipeline.dedup import normalize_product

#: How close "more X" must be to a shown product type (rapidfuzz token-sort ratio, 0-100).
PRODUCT_MATCH = 85.0


@dataclass(frozen=True)
class NewNeed:
    """Start over with this need."""

    text: str


@dataclass(frozen=True)
class Cheaper:
    """Re-rank the current results under a budget; ``budget`` None means "cheaper than what was shown"."""

    budget: float | None = None


@dataclass(frozen=True)
class More:
    """Fetch the next page of listings for one product type of the last answer."""

    product: str


FollowUp = NewNeed | Cheaper | More

_POLITE = r"(?:\s*,?\s*(?:please|pls|thanks|thank you))?"
_END = _POLITE + r"\s*[.!?]*\s*$"
_CHEAPER = re.compile(
    r"^(?:(?:show me|show|something|anything|any|got anything|find|i want|give me)\s+)?"
    r"(?:cheaper|less expensive|more affordable|lower[- ]priced|budget)"
    r"(?:\s+(?:ones?|options?|stuff|things|items|alternatives|please))?" + _END,
    re.IGNORECASE,
)
_AMOUNT = r"(?P<symbol>[$£€¥₹])?\s*(?P<amount>\d{1,3}(?:,\d{3})+|\d+(?:[.,]\d{1,2})?)\s*(?:[$£€¥₹]|dollars?|bucks|euros?|pounds?|usd|eur|gbp)?"
_BUDGET = re.compile(
    r"^(?:(?:something|anything|only|just|show me|show|cheaper|find|items?|options?)\s*,?\s+)*"
    r"(?:under|below|less than|no more than|not more than|max(?:imum)?|at most|up to|within|"
    r"budget(?:\s+(?:of|is))?|<=?)\s*:?\s*" + _AMOUNT + _END,
    re.IGNORECASE,
)
_MORE = re.compile(
    r"^(?:(?:show|give|find)\s+(?:me\s+)?)?more\s+(?:of\s+)?(?:(?:the|those|these)\s+)?(?P<product>.+?)" + _END,
    re.IGNORECASE,
)


def parse_amount(text: str) -> float:
    """ "1,000" -> 1000.0, "19,99" -> 19.99 (a decimal comma), "20" -> 20.0."""
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+", text):
        return float(text.replace(",", ""))
    return float(text.replace(",", "."))


def match_product(text: str, products: Sequence[str]) -> str | None:
    """The product type of ``products`` that ``text`` names (plurals and word order forgiven), or None."""
    wanted = normalize_product(text)
    if not wanted:
        return None
    best, best_score = None, 0.0
    for product in products:
        key = normalize_product(product)
        score = 100.0 if key == wanted else fuzz.token_sort_ratio(key, wanted)
        if score > best_score:
            best, best_score = product, score
    return best if best_score >= PRODUCT_MATCH else None


def parse_followup(text: str, products: Sequence[str] = ()) -> FollowUp:
    """What the user asked for, given the product types of the last answer (none: no answer yet)."""
    message = " ".join(text.split())
    if budget := _BUDGET.match(message):
        amount = parse_amount(budget.group("amount"))
        if amount > 0:
            return Cheaper(budget=amount)
    if _CHEAPER.match(message):
        return Cheaper()
    if (more := _MORE.match(message)) and (product := match_product(more.group("product"), products)):
        return More(product=product)
    return NewNeed(text=message)
