"""Ranking: the properties users rely on, checked with hypothesis, plus MiniLM relevance on real titles.

Property tests pass a fixed ``relevance`` so that "everything else equal" really is equal; the MiniLM
tests at the end use the real model (loaded once per session).
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core.schemas import Listing, Suggestion
from agent.pipeline.ranking import (
    RATING_PRIOR,
    WEIGHTS,
    interleave,
    is_search_link,
    rank_listings,
    shrunk_rating,
)
from tests.conftest_axesso import fixture_minilm, listing  # noqa: F401 - fixtures are found by name
from tools.base import SearchQuery
from tools.links import LinksBackend


def same_relevance(titles, products):
    return [0.8] * len(titles)


def suggest(*products: str, votes: dict[str, int] | None = None) -> list[Suggestion]:
    return [Suggestion(product=p, votes=(votes or {}).get(p, 1)) for p in products]


def rank(listings, suggestions=None, *, budget=None, top_k=10, **kwargs):
    suggestions = suggestions or suggest(*dict.fromkeys(x.product for x in listings))
    return rank_listings(
        listings, suggestions, budget=budget, top_k=top_k, relevance=same_relevance, **kwargs
    )


prices = st.one_of(st.none(), st.floats(min_value=0.01, max_value=5000, allow_nan=False))
ratings = st.one_of(st.none(), st.floats(min_value=0, max_value=5, allow_nan=False))
reviews = st.one_of(st.none(), st.integers(min_value=0, max_value=10**7))
listings_strategy = st.lists(
    st.builds(
        lambda product, price, rating, count, sponsored: listing(
            product, price=price, rating=rating, reviews=count, sponsored=sponsored
        ),
        st.sampled_from(["garden trowel", "kneeling pad", "garden gloves"]),
        prices,
        ratings,
        reviews,
        st.booleans(),
    ),
    max_size=30,
)


# --- properties --------------------------------------------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(listings_strategy, st.floats(min_value=0, max_value=5000, allow_nan=False), st.integers(1, 40))
def test_nothing_over_budget_ever_appears(items, budget, top_k):
    ranked = rank(items, budget=budget, top_k=top_k)
    assert len(ranked) <= top_k
    for item in ranked:
        # A product with an unknown price cannot be checked, so it is dropped; a search link has no price.
        assert (item.price is not None and item.price <= budget) or is_search_link(item)


@settings(max_examples=300, deadline=None)
@given(
    st.floats(min_value=0, max_value=5, allow_nan=False),
    st.integers(min_value=0, max_value=10**7),
    st.integers(min_value=1, max_value=10**6),
    st.one_of(st.none(), st.floats(min_value=1, max_value=500)),
)
def test_more_reviews_at_the_same_rating_rank_higher(rating, fewer, extra, price):
    few = listing(rating=rating, reviews=fewer, price=price)
    many = listing(rating=rating, reviews=fewer + extra, price=price)
    for order in ([few, many], [many, few]):
        ranked = rank(order, top_k=2)
        assert [x.url for x in ranked] == [many.url, few.url]
        assert ranked[0].score > ranked[1].score


def test_five_stars_on_two_reviews_does_not_beat_4_7_on_3000():
    lucky = listing(rating=5.0, reviews=2)
    proven = listing(rating=4.7, reviews=3000)
    ranked = rank([lucky, proven])
    assert ranked[0].url == proven.url
    assert shrunk_rating(5.0, 2) < shrunk_rating(4.7, 3000)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=2, max_value=6), st.integers(min_value=2, max_value=10))
def test_top_k_interleaves_product_types(types, top_k):
    products = [f"type {i}" for i in range(types)]
    # The first type has ten excellent forks; the others one modest listing each.
    items = [listing(products[0], rating=5.0, reviews=50_000) for _ in range(10)]
    items += [listing(p, rating=3.5, reviews=20) for p in products[1:]]
    ranked = rank(items, top_k=top_k)
    shown = {x.product for x in ranked}
    assert len(shown) == min(types, top_k)
    assert len(ranked) == top_k


def test_rounds_keep_each_types_best_first():
    a1, a2 = listing("a", score=0.9), listing("a", score=0.8)
    b1, b2 = listing("b", score=0.5), listing("b", score=0.4)
    assert [x.url for x in interleave([a2, b2, a1, b1], top_k=4)] == [a1.url, b1.url, a2.url, b2.url]


def test_sponsored_excluded_by_default():
    paid = listing(sponsored=True, rating=5.0, reviews=10**6)
    organic = listing()
    assert [x.url for x in rank([paid, organic])] == [organic.url]
    assert {x.url for x in rank([paid, organic], include_sponsored=True)} == {paid.url, organic.url}


def test_score_is_the_weighted_sum_of_named_parts_in_unit_range():
    assert math.isclose(sum(WEIGHTS.values()), 1.0)
    items = [listing(price=10.0), listing(price=30.0, rating=None, reviews=None), listing("pad", price=None)]
    for item in rank(items, budget=None):
        assert set(item.score_parts) == set(WEIGHTS)
        assert all(0.0 <= value <= 1.0 for value in item.score_parts.values())
        assert math.isclose(item.score, sum(WEIGHTS[k] * v for k, v in item.score_parts.items()))


def test_cheaper_is_mildly_preferred_within_a_type():
    cheap, dear = listing(price=10.0), listing(price=40.0)
    ranked = rank([dear, cheap])
    assert ranked[0].url == cheap.url
    assert ranked[0].score_parts["price"] == 1.0 and ranked[1].score_parts["price"] == 0.0


def test_consensus_follows_votes():
    a, b = listing("a"), listing("b")
    ranked = rank([a, b], suggest("a", "b", votes={"a": 1, "b": 4}))
    assert ranked[0].url == b.url
    assert (ranked[0].score_parts["consensus"], ranked[1].score_parts["consensus"]) == (1.0, 0.25)


def test_no_rating_counts_as_the_prior():
    assert shrunk_rating(None, 500) == RATING_PRIOR == shrunk_rating(4.9, 0)


def test_duplicates_are_kept_once():
    twin = listing("a", asin="B000000001")
    other_type = listing("b", asin="B000000001", url="https://www.amazon.com/other")
    assert len(rank([twin, other_type])) == 1


def test_inputs_are_not_modified():
    item = listing()
    rank([item])
    assert item.score is None and item.score_parts == {}


def test_empty_and_all_filtered():
    assert rank_listings([], [], budget=None, top_k=5) == []
    assert rank([listing(price=100.0)], budget=10.0) == []


# --- links backend -----------------------------------------------------------------------------------
def test_links_keep_the_suggestions_order_by_votes_one_per_type():
    suggestions = suggest(
        "trowel", "gloves", "kneeling pad", votes={"trowel": 2, "gloves": 1, "kneeling pad": 3}
    )
    links = LinksBackend().search_many([SearchQuery(keyword=s.product) for s in suggestions]).listings
    links.append(
        LinksBackend().search(SearchQuery(keyword="trowel", domain="de")).listings[0]
    )  # a second one
    ranked = rank_listings(links, suggestions, budget=25.0, top_k=10)  # no model needed, budget irrelevant
    assert [x.product for x in ranked] == ["kneeling pad", "trowel", "gloves"]
    assert ranked[1].url == "https://www.amazon.com/s?k=trowel"
    assert ranked[0].score_parts == {"consensus": 1.0}
    assert [x.product for x in rank_listings(links, suggestions, budget=None, top_k=2)] == [
        "kneeling pad",
        "trowel",
    ]


def test_links_fallback_mixed_with_listings_stays_visible():
    fallback = LinksBackend().search(SearchQuery(keyword="kneeling pad")).listings
    items = [listing("garden trowel") for _ in range(5)] + fallback
    ranked = rank(items, top_k=3, budget=50.0)
    assert "kneeling pad" in {x.product for x in ranked}


# --- with the real MiniLM ----------------------------------------------------------------------------
def test_minilm_relevance_prefers_the_matching_title(minilm):
    right = Listing(
        product="garden trowel",
        title="Fiskars Ergo Garden Trowel, Heavy Duty Hand Shovel",
        url="https://www.amazon.com/dp/B000000001",
        price=20.0,
        rating=4.5,
        reviews=500,
    )
    wrong = Listing(
        product="garden trowel",
        title="Stainless Steel Dinner Forks, Set of 12",
        url="https://www.amazon.com/dp/B000000002",
        price=20.0,
        rating=4.5,
        reviews=500,
    )
    ranked = rank_listings([wrong, right], suggest("garden trowel"), budget=None, top_k=2)
    assert ranked[0].url == right.url
    assert ranked[0].score_parts["relevance"] > ranked[1].score_parts["relevance"] + 0.2
