"""Rank listings in a way users can check: a weighted sum of named parts, each in [0, 1].

    score = W_RELEVANCE * relevance + W_RATING * rating + W_REVIEWS * reviews
          + W_PRICE * price + W_CONSENSUS * consensus

- ``relevance``: MiniLM cosine similarity of the listing's title and its product type, negatives as 0.
- ``rating``: the Bayesian-shrunk star rating, rescaled from 1..5 stars to 0..1::

      shrunk = (n * r + RATING_PRIOR_REVIEWS * RATING_PRIOR) / (n + RATING_PRIOR_REVIEWS)

  with ``r`` the rating (clamped to Amazon's 1..5 stars) and ``n`` its review count. A rating is pulled
  towards the prior until enough reviews back it: 5.0 stars on 2 reviews counts as 1.7, 4.7 on 3,000 as
  4.69. The prior is deliberately the scale's floor, 1 star, so a rating earns trust with reviews and more
  reviews never lower a listing, whatever its rating. No rating counts as n = 0, i.e. the prior.
- ``reviews``: review volume on a log scale, squashed into [0, 1):
  ``log1p(n) / (log1p(n) + log1p(REVIEWS_HALF))``, 0.5 at ``REVIEWS_HALF`` reviews, strictly increasing.
- ``price``: a mild preference for cheaper within the same product type: 1 for the cheapest, 0 for the
  dearest, linear in log price (1 when all prices are equal); 0 for an unknown price. A ``budget`` is a
  hard filter: a listing over it never appears, nor a product whose price is unknown (it cannot be
  checked); search links (no price, rating or reviews) stay.
- ``consensus``: the product type's support over the best-supported type's: its fused score (model,
  memory and relevance, :mod:`agent.pipeline.fusion`) when it has one, else its votes (how many paraphrases
  proposed it).

Sponsored listings are dropped unless asked for, duplicates (same ASIN or URL) are kept once, and the top
K interleave product types: each round takes the next-best listing of every type, so ten forks cannot
crowd out the trowel. For the links backend (listings without rating, reviews or price) the ranking is
simply the suggestions' order by support, one link per product type.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from agent.core.schemas import Listing, Suggestion

W_RELEVANCE = 0.35
W_RATING = 0.25
W_REVIEWS = 0.15
W_PRICE = 0.10
W_CONSENSUS = 0.15
WEIGHTS: dict[str, float] = {
    "relevance": W_RELEVANCE,
    "rating": W_RATING,
    "reviews": W_REVIEWS,
    "price": W_PRICE,
    "consensus": W_CONSENSUS,
}

#: Prior star rating a listing is pulled towards (the 1-star floor: trust must be earned by reviews).
RATING_PRIOR = 1.0
#: How many reviews the prior is worth.
RATING_PRIOR_REVIEWS = 10
#: Review count at which the ``reviews`` part reaches 0.5.
REVIEWS_HALF = 500

#: Relevance of titles to product types: (titles, products) -> one similarity per pair.
RelevanceFn = Callable[[Sequence[str], Sequence[str]], Sequence[float]]


def minilm_relevance(titles: Sequence[str], products: Sequence[str]) -> list[float]:
    """Cosine similarity of each title with its product type (MiniLM, unique texts embedded once)."""
    from agent.core.embeddings import embed

    unique_titles, unique_products = sorted(set(titles)), sorted(set(products))
    title_vectors = dict(zip(unique_titles, embed(unique_titles), strict=True))
    product_vectors = dict(zip(unique_products, embed(unique_products), strict=True))
    return [float(title_vectors[t] @ product_vectors[p]) for t, p in zip(titles, products, strict=True)]


def shrunk_rating(rating: float | None, reviews: int | None) -> float:
    """The Bayesian-shrunk rating in stars (see the module docstring)."""
    if rating is None:
        return RATING_PRIOR
    n = reviews or 0
    r = min(5.0, max(1.0, rating))
    return (n * r + RATING_PRIOR_REVIEWS * RATING_PRIOR) / (n + RATING_PRIOR_REVIEWS)


def reviews_part(reviews: int | None) -> float:
    volume = math.log1p(reviews or 0)
    return volume / (volume + math.log1p(REVIEWS_HALF))


def is_search_link(listing: Listing) -> bool:
    """A marketplace search page (links backend), not a product."""
    return (
        listing.asin is None and listing.price is None and listing.rating is None and listing.reviews is None
    )


def rank_listings(
    listings: list[Listing],
    suggestions: list[Suggestion],
    *,
    budget: float | None,
    top_k: int,
    include_sponsored: bool = False,
    relevance: RelevanceFn | None = None,
) -> list[Listing]:
    """The top ``top_k`` listings, scored (``score``, ``score_parts``) and interleaved across product types.

    The input listings are not modified. ``relevance`` replaces MiniLM (tests, other embedders).
    """
    votes = _votes(suggestions)
    if listings and all(is_search_link(listing) for listing in listings):
        return _rank_links(listings, suggestions, votes, top_k)
    kept = [
        listing
        for listing in listings
        if (include_sponsored or not listing.sponsored) and _within_budget(listing, budget)
    ]
    if not kept:
        return []
    similarity = (relevance or minilm_relevance)([x.title for x in kept], [x.product for x in kept])
    price_fit = _price_fit(kept)
    top_votes = max(votes.values(), default=0.0) or 1.0
    scored = []
    for listing, sim, price in zip(kept, similarity, price_fit, strict=True):
        parts = {
            "relevance": max(0.0, min(1.0, float(sim))),
            "rating": (shrunk_rating(listing.rating, listing.reviews) - 1.0) / 4.0,
            "reviews": reviews_part(listing.reviews),
            "price": price,
            "consensus": votes.get(_fold(listing.product), 1) / top_votes,
        }
        score = sum(WEIGHTS[name] * value for name, value in parts.items())
        scored.append(listing.model_copy(update={"score": score, "score_parts": parts}))
    return interleave(_unique(scored), top_k)


def interleave(scored: list[Listing], top_k: int) -> list[Listing]:
    """Round-robin across product types: round i holds every type's i-th best, best first."""
    groups: dict[str, list[Listing]] = {}
    for listing in sorted(scored, key=lambda x: x.score or 0.0, reverse=True):
        groups.setdefault(_fold(listing.product), []).append(listing)
    ranked: list[Listing] = []
    depth = 0
    while len(ranked) < top_k and any(len(group) > depth for group in groups.values()):
        round_ = [group[depth] for group in groups.values() if len(group) > depth]
        ranked.extend(sorted(round_, key=lambda x: x.score or 0.0, reverse=True))
        depth += 1
    return ranked[:top_k]


def _rank_links(
    listings: list[Listing], suggestions: list[Suggestion], votes: dict[str, float], top_k: int
) -> list[Listing]:
    """Links backend: one link per product type, in the suggestions' order by support (stable)."""
    first: dict[str, Listing] = {}
    for listing in listings:
        first.setdefault(_fold(listing.product), listing)
    order = [_fold(s.product) for s in sorted(suggestions, key=_support, reverse=True)]
    order += [key for key in first if key not in order]  # listings for types the suggestions lack
    top_votes = max(votes.values(), default=0.0) or 1.0
    ranked = []
    for key in order:
        if key in first and len(ranked) < top_k:
            consensus = votes.get(key, 1) / top_votes
            ranked.append(
                first.pop(key).model_copy(
                    update={"score": W_CONSENSUS * consensus, "score_parts": {"consensus": consensus}}
                )
            )
    return ranked


def _within_budget(listing: Listing, budget: float | None) -> bool:
    if budget is None:
        return True
    if listing.price is None:
        return is_search_link(listing)
    return listing.price <= budget


def _price_fit(listings: list[Listing]) -> list[float]:
    """1 for the cheapest of its product type, 0 for the dearest, linear in log price; 0 if unknown."""
    ranges: dict[str, tuple[float, float]] = {}
    for listing in listings:
        if listing.price is not None and listing.price > 0:
            low, high = ranges.get(_fold(listing.product), (math.inf, -math.inf))
            log_price = math.log(listing.price)
            ranges[_fold(listing.product)] = (min(low, log_price), max(high, log_price))
    fits = []
    for listing in listings:
        if listing.price is None or listing.price <= 0:
            fits.append(0.0)
            continue
        low, high = ranges[_fold(listing.product)]
        fits.append(1.0 if high == low else (high - math.log(listing.price)) / (high - low))
    return fits


def _unique(scored: list[Listing]) -> list[Listing]:
    """One listing per ASIN (or URL), the best-scored one."""
    best: dict[str, Listing] = {}
    for listing in scored:
        key = listing.asin or listing.url
        if key not in best or (listing.score or 0.0) > (best[key].score or 0.0):
            best[key] = listing
    return list(best.values())


def _support(suggestion: Suggestion) -> float:
    """How strongly a product type is backed: its fused score, or its votes when it was not fused."""
    return suggestion.score if suggestion.score is not None else float(suggestion.votes)


def _votes(suggestions: list[Suggestion]) -> dict[str, float]:
    votes: dict[str, float] = {}
    for suggestion in suggestions:
        key = _fold(suggestion.product)
        votes[key] = max(votes.get(key, 0.0), _support(suggestion))
    return votes


def _fold(product: str) -> str:
    return " ".join(product.casefold().split())
