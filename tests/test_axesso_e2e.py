"""Issue 4's "done when", at the chain level: a need in, ranked Amazon listings out, from a local server
speaking Axesso's schema (configured only by environment variables), with the fake model of tests/fakes.py.
"""

from __future__ import annotations

import json

import pytest
from werkzeug import Request, Response

from agent.bench.fake_axesso import SEARCH_PATH, fake_asin, product, search_page
from agent.pipeline.chain import build_chain
from tests.conftest import exact_similarity
from tests.conftest_axesso import (  # noqa: F401 - fixtures are found by name
    FAKE_KEY,
    fixture_axesso_server,
    fixture_minilm,
    fixture_server,
)
from tests.fakes import FakeWhazzatLLM

NEED = "something to dig food"


def marketplace(request: Request) -> Response:
    """Three listings per keyword: a proven one, a cheap one on 2 reviews, and a sponsored one."""
    keyword = request.args["keyword"]
    offers = [
        (
            f"Heavy duty {keyword}",
            {"price": 24.99, "productRating": "4.7 out of 5 stars", "countReview": 3000},
        ),
        (f"Basic {keyword}", {"price": 9.99, "productRating": "5.0 out of 5 stars", "countReview": 2}),
        (f"Sponsored {keyword}", {"sponsored": True}),
    ]
    items = [
        product(productDescription=title, asin=fake_asin(title), dpUrl=f"/x/dp/{fake_asin(title)}", **fields)
        for title, fields in offers
    ]
    return Response(json.dumps(search_page(items, keyword=keyword)), content_type="application/json")


@pytest.fixture
def axesso_env(monkeypatch, server, tmp_path):
    monkeypatch.setenv("RAPIDAPI_KEY", FAKE_KEY)
    monkeypatch.setenv("WHAZZAT_AXESSO_URL", server.url_for("").rstrip("/"))
    monkeypatch.setenv("WHAZZAT_HOME", str(tmp_path))
    monkeypatch.setenv("WHAZZAT_HTTP_BACKOFF_INITIAL", "0.01")
    monkeypatch.setenv("WHAZZAT_HTTP_CONNECT_TIMEOUT", "1")
    return server


def ask(**overrides):
    chain = build_chain(llm=FakeWhazzatLLM(), backend="axesso", similarity=exact_similarity, **overrides)
    return chain.invoke(NEED)


def test_ranked_listings_then_a_free_second_run(axesso_env, minilm):
    axesso_env.expect_request(SEARCH_PATH).respond_with_handler(marketplace)
    result = ask(top_k=6)
    searched = len(axesso_env.log)
    assert searched >= 3  # one call per product type
    assert result.warnings == []
    assert len(result.listings) == 6
    assert len({listing.product for listing in result.listings}) >= 3  # interleaved product types
    for listing in result.listings:
        assert listing.url.startswith("https://www.amazon.com/")
        assert listing.price is not None and listing.rating is not None and not listing.sponsored
        assert set(listing.score_parts) == {"relevance", "rating", "reviews", "price", "consensus"}
    assert result.listings[0].title.startswith("Heavy duty")  # 4.7 on 3,000 beats 5.0 on 2
    assert FAKE_KEY not in result.model_dump_json()

    again = ask(top_k=6)
    assert len(axesso_env.log) == searched  # served from the disk cache
    assert [x.url for x in again.listings] == [x.url for x in result.listings]


def test_budget_filters_the_answer(axesso_env, minilm):
    axesso_env.expect_request(SEARCH_PATH).respond_with_handler(marketplace)
    result = ask(budget=10)
    assert result.listings and all(listing.price <= 10 for listing in result.listings)


def test_with_the_server_down_the_answer_still_comes_as_links(axesso_env, monkeypatch, minilm):
    monkeypatch.setenv("WHAZZAT_AXESSO_URL", "http://127.0.0.1:9")  # nothing listens there
    result = ask()
    assert result.listings
    assert all(listing.url.startswith("https://www.amazon.com/s?k=") for listing in result.listings)
    assert len(result.warnings) == 1 and "could not be reached" in result.warnings[0]
