"""Product cards in the browser: the props of the ``WhazzatCards`` custom element, and the answer's two forms.

An answer is sent as one message with two forms of the same listings:

- its Markdown (:func:`agent.ui.cards.render_answer`), the message's text: what Chainlit's copy button
  copies, and what shows if the element cannot load;
- the cards element, ``public/elements/WhazzatCards.jsx``, which Chainlit loads from the app root's
  ``public/`` folder and renders with these props. Once it has rendered, ``public/whazzat.css`` hides the
  card part of the Markdown (from its first product heading on), so nothing shows twice.

Props are plain text: React shows text as text, so nothing here is Markdown-escaped. Only absolute http(s)
URLs reach the browser (:func:`agent.ui.cards.safe_url`; the JSX checks the scheme again).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from agent.core.schemas import Listing, Suggestion
from agent.pipeline.dedup import normalize_product
from agent.pipeline.ranking import WEIGHTS
from agent.ui.cards import (
    format_price,
    group_by_product,
    is_search_link,
    one_line,
    phrasing_labels,
    product_reasons,
    safe_url,
    votes_label,
)

if TYPE_CHECKING:
    import chainlit as cl

#: The element's name: Chainlit fetches ``/public/elements/<name>.jsx``.
ELEMENT_NAME = "WhazzatCards"
ELEMENT_URL = f"/public/elements/{ELEMENT_NAME}.jsx"
#: What each part of a listing's score means, shown behind its "Why this?".
PART_LABELS = {
    "relevance": "Matches the product type",
    "rating": "Rating, weighed by its reviews",
    "reviews": "Number of reviews",
    "price": "Cheaper than others of its type",
    "consensus": "Support for its product type",
}
FOLLOW_UP_HINT = "Try a follow-up: “cheaper”, “under $20”, “more” and a product type, or a new need."
ALT_CHARS = 100


class _Props(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScorePart(_Props):
    """One named part of a listing's score, in [0, 1], and its weight in the sum."""

    name: str
    label: str
    value: float
    weight: float | None = None


class CardListing(_Props):
    """One product card."""

    title: str = Field(description="Plain text, one line.")
    url: str | None = Field(description="The product page (http(s) only), or None: no link.")
    image: str | None = Field(description="The picture (http(s) only), or None: a placeholder.")
    image_alt: str
    price: str = Field(description="Formatted with the marketplace's currency; empty when unknown.")
    rating: float | None = None
    reviews: int | None = None
    reviews_label: str = ""
    prime: bool = False
    sponsored: bool = False
    score: float | None = None
    parts: list[ScorePart] = Field(default_factory=list)


class CardLink(_Props):
    """A marketplace search page for a product type (links backend, or a fallback)."""

    title: str
    url: str


class CardGroup(_Props):
    """One product type: its product cards, or (links only) one compact card."""

    product: str
    votes: str = Field(description="Its support, e.g. '3 of 4 phrasings'; empty when there is nothing to say.")
    why: str = Field(description="The phrasings and similar needs behind it, in words.")
    compact: bool = Field(description="Search links only: shown as one compact card.")
    listings: list[CardListing] = Field(default_factory=list)
    links: list[CardLink] = Field(default_factory=list)


class CardsProps(_Props):
    """Everything the element shows below the answer's title."""

    groups: list[CardGroup]
    notes: list[str] = Field(default_factory=list, description="Warnings, e.g. a search that failed.")
    rewrites: list[str] = Field(default_factory=list, description="The paraphrases asked with the need.")
    hint: str = FOLLOW_UP_HINT


def card_listing(listing: Listing, domain: str) -> CardListing:
    title = one_line(listing.title)
    parts = [
        ScorePart(name=name, label=PART_LABELS.get(name, name), value=round(value, 3), weight=WEIGHTS.get(name))
        for name, value in listing.score_parts.items()
    ]
    return CardListing(
        title=title,
        url=safe_url(listing.url),
        image=safe_url(listing.image),
        image_alt=one_line(listing.title, ALT_CHARS),
        price=format_price(listing.price, domain),
        rating=listing.rating,
        reviews=listing.reviews,
        reviews_label="" if listing.reviews is None else f"{listing.reviews:,}",
        prime=listing.prime,
        sponsored=listing.sponsored,
        score=None if listing.score is None else round(listing.score, 3),
        parts=parts,
    )


def card_group(product: str, listings: Sequence[Listing], domain: str, votes: str, why: str) -> CardGroup:
    products = [listing for listing in listings if not is_search_link(listing)]
    links = [
        CardLink(title=one_line(listing.title), url=url)
        for listing in listings
        if is_search_link(listing) and (url := safe_url(listing.url))
    ]
    return CardGroup(
        product=one_line(product[:1].upper() + product[1:], 80),
        votes=votes,
        why=why,
        compact=not products,
        listings=[card_listing(listing, domain) for listing in products],
        links=links,
    )


def cards_props(
    *,
    need: str,
    paraphrases: Sequence[str],
    suggestions: Sequence[Suggestion],
    listings: Sequence[Listing],
    domain: str,
    warnings: Sequence[str] = (),
) -> CardsProps | None:
    """The element's props for an answer, or None when there is no listing to show."""
    if not listings:
        return None
    asked = 1 + len(paraphrases)
    labels = phrasing_labels(need, paraphrases)
    by_key = {normalize_product(s.product): s for s in suggestions}
    groups = []
    for product, group in group_by_product(listings):
        suggestion = by_key.get(normalize_product(product))
        why = product_reasons(suggestion, labels, quote=lambda text: f"“{one_line(text, 80)}”") if suggestion else ""
        groups.append(card_group(product, group, domain, votes_label(suggestion, asked), why))
    return CardsProps(
        groups=groups,
        notes=[one_line(warning, 300) for warning in dict.fromkeys(warnings)],
        rewrites=[one_line(text, 100) for text in paraphrases],
    )


@dataclass(frozen=True)
class AnswerContent:
    """An answer message: its Markdown and, when it lists something, its cards."""

    markdown: str
    cards: CardsProps | None = None

    def elements(self) -> list[cl.CustomElement]:
        """The message's elements: the cards, shown under its text."""
        if self.cards is None:
            return []
        import chainlit as cl

        # The browser gets the props with the element. Without a URL, Chainlit would also write them to a
        # file per answer under the app root's .files/ (never read back for a custom element): the URL of
        # the element's code spares that, and answers do not depend on that folder.
        return [cl.CustomElement(name=ELEMENT_NAME, props=self.cards.model_dump(mode="json"), display="inline",
                                 url=ELEMENT_URL)]
