"""Parsing Axesso responses: both page shapes, tolerant reading, strict validation of what we use."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.bench.fake_axesso import product, search_page
from tools.axesso_parse import (
    AMAZON_IMAGE_HOSTS,
    AxessoApiError,
    AxessoFormatError,
    amazon_image,
    amazon_url,
    parse_search,
)
from tools.values import parse_bool, parse_count, parse_price, parse_rating

_ROOT = Path(__file__).resolve().parents[1]
#: Axesso's documented examples: in the repo's data/ if vendored, else the shared checkout beside it.
EXAMPLES = next(
    (
        path
        for path in (_ROOT / "data" / "axesso", _ROOT.parent / "shared" / "data" / "axesso")
        if path.is_dir()
    ),
    _ROOT / "data" / "axesso",
)


def _example(name: str) -> dict:
    path = EXAMPLES / name
    if not path.exists():
        pytest.skip(f"example {path} not available")
    return json.loads(path.read_text())


def test_2025_example_item_is_read_with_page_fields_merged_in():
    parsed = parse_search(_example("search_item_2025_example.json"), keyword="fidget toy", domain="com")
    (item,) = parsed.listings
    assert item.product == "fidget toy"
    assert item.title.startswith("Shashibo Shape Shifting Box")
    assert item.url.startswith(
        "https://www.amazon.com/Shashibo-Shape-Shifting-Box-Award-Winning/dp/B07W5QM4DP/"
    )
    assert (item.price, item.rating, item.reviews, item.asin) == (24.99, 4.6, 758, "B07W5QM4DP")
    assert item.image == "https://m.media-amazon.com/images/I/71FDJXk6qhL._AC_UL320_.jpg"
    assert (item.sponsored, item.prime) == (False, False)


def test_older_example_without_dp_url_links_to_the_asin():
    parsed = parse_search(_example("search_v1_example.json"), keyword="phone case", domain="com")
    assert parsed.total == 4 and parsed.dropped == 0
    first = parsed.listings[0]
    assert first.url == "https://www.amazon.com/dp/B07KY8VKGK"
    assert (first.reviews, first.price, first.rating) == (24079, None, None)


@pytest.mark.parametrize("name", ["error_400_example.json", "error_404_example.json"])
def test_error_bodies_raise_api_error_with_the_message(name):
    with pytest.raises(AxessoApiError) as error:
        parse_search(_example(name), keyword="x", domain="com")
    assert str(error.value) == _example(name)["message"][:200]


def test_2025_page_with_a_product_list():
    page = search_page([product(), product(asin="B000000002", dpUrl="/x/dp/B000000002", sponsored=True)])
    parsed = parse_search(page, keyword="garden trowel", domain="com")
    assert [x.asin for x in parsed.listings] == ["B00002N6U4", "B000000002"]
    assert parsed.listings[1].sponsored and parsed.listings[0].prime


def test_missing_and_extra_fields_are_tolerated():
    bare = {"productDescription": "Trowel", "asin": "B000000003", "brandNewField": {"x": 1}}
    odd = product(
        asin="B000000004",
        dpUrl=None,
        price="$1,299.99",
        countReview="1,234",
        productRating=None,
        prime="true",
        sponsored=None,
        variations=[{"a": 1}],
    )
    parsed = parse_search(search_page([bare, odd], extraPageField=True), keyword="trowel", domain="com")
    first, second = parsed.listings
    assert first.url == "https://www.amazon.com/dp/B000000003"
    assert (first.price, first.rating, first.reviews, first.image) == (None, None, None, None)
    assert (second.price, second.reviews, second.rating, second.prime) == (1299.99, 1234, None, True)


@pytest.mark.parametrize(
    ("dp_url", "domain", "expected"),
    [
        ("/dp/B07W5QM4DP", "com", "https://www.amazon.com/dp/B07W5QM4DP"),
        ("/dp/B07W5QM4DP?th=1", "co.uk", "https://www.amazon.co.uk/dp/B07W5QM4DP?th=1"),
        ("https://www.amazon.de/dp/B07W5QM4DP", "com", "https://www.amazon.de/dp/B07W5QM4DP"),
        ("https://www.amazon.com/dp/B07W5QM4DP", "com", "https://www.amazon.com/dp/B07W5QM4DP"),
        ("javascript:alert(document.cookie)", "com", None),
        ("JavaScript:alert(1)", "com", None),
        ("https://evil.example/dp/B07W5QM4DP", "com", None),
        ("https://www.amazon.com.evil.example/dp/x", "com", None),
        ("https://www.amazon.com@evil.example/dp/x", "com", None),
        ("//evil.example/dp/x", "com", None),
        ("http://www.amazon.com/dp/x", "com", None),
        ("https://www.amazon.com:8443/dp/x", "com", None),
        ("https://amazon.com/dp/x", "com", None),
        ("data:text/html,<script>", "com", None),
        ("/dp/x\n<script>", "com", None),
        (42, "com", None),
    ],
)
def test_product_urls_are_strictly_amazon_https(dp_url, domain, expected):
    assert amazon_url(dp_url, domain) == expected


def test_items_with_a_bad_url_are_dropped_not_repaired():
    page = search_page(
        [
            product(asin="B000000001", dpUrl="javascript:alert(1)"),
            product(asin="B000000002", dpUrl="https://evil.example/dp/B000000002"),
            product(asin="B000000003", dpUrl="/ok/dp/B000000003"),
            product(asin="B000000004", dpUrl="https://www.amazon.com/ok/dp/B000000004"),
            product(asin="not-an-asin", dpUrl=None),
            product(productDescription="   ", asin="B000000005"),
        ]
    )
    parsed = parse_search(page, keyword="trowel", domain="com")
    assert [x.asin for x in parsed.listings] == ["B000000003", "B000000004"]
    assert parsed.dropped == 4


@pytest.mark.parametrize(
    ("image", "kept"),
    [
        ("https://m.media-amazon.com/images/I/71x.jpg", True),
        ("https://images-na.ssl-images-amazon.com/images/I/71x.jpg", True),
        ("http://m.media-amazon.com/images/I/71x.jpg", False),
        ("https://tracker.example/pixel.gif", False),
        ("https://m.media-amazon.com.evil.example/x.jpg", False),
        ("javascript:alert(1)", False),
        (None, False),
    ],
)
def test_images_only_from_amazon_image_hosts(image, kept):
    assert (amazon_image(image) is not None) is kept


@given(st.text(max_size=80))
def test_any_text_as_url_gives_amazon_https_or_nothing(text):
    url = amazon_url(text, "com")
    if url is not None:
        parts = urlsplit(url)
        assert parts.scheme == "https" and parts.netloc.startswith("www.amazon.")


@given(st.text(max_size=80))
def test_any_text_as_image_gives_an_amazon_image_host_or_nothing(text):
    image = amazon_image(text)
    assert image is None or urlsplit(image).hostname in AMAZON_IMAGE_HOSTS


@pytest.mark.parametrize(
    ("raw", "rating"),
    [
        ("4.6 out of 5 stars", 4.6),
        ("5.0 out of 5 stars", 5.0),
        ("4,6 von 5 Sternen", 4.6),
        ("4,6 sur 5 étoiles", 4.6),
        ("5つ星のうち4.6", 4.6),
        (4.6, 4.6),
        ("4.6", 4.6),
        ("", None),
        ("no rating", None),
        ("7 out of 10", None),
        (True, None),
        (None, None),
    ],
)
def test_ratings(raw, rating):
    assert parse_rating(raw) == rating


@pytest.mark.parametrize(
    ("raw", "count"),
    [
        (758, 758),
        ("1,234", 1234),
        ("1.234", 1234),
        (12.0, 12),
        (12.5, None),
        (-3, None),
        ("many", None),
        (None, None),
    ],
)
def test_review_counts(raw, count):
    assert parse_count(raw) == count


@pytest.mark.parametrize(
    ("raw", "price"),
    [
        (24.99, 24.99),
        ("$24.99", 24.99),
        ("1.299,99 €", 1299.99),
        ("£1,299", 1299.0),
        (0, None),
        (-1, None),
        ("", None),
        (None, None),
        (float("inf"), None),
    ],
)
def test_prices(raw, price):
    assert parse_price(raw) == price


@pytest.mark.parametrize(
    ("raw", "flag"),
    [
        (True, True),
        ("true", True),
        (1, True),
        (False, False),
        (None, False),
        ("no", False),
        ("sponsored", False),
    ],
)
def test_flags(raw, flag):
    assert parse_bool(raw) is flag


@pytest.mark.parametrize("payload", [[], "oops", None, {"searchProductDetails": "not a list"}])
def test_not_a_search_response(payload):
    with pytest.raises(AxessoFormatError):
        parse_search(payload, keyword="x", domain="com")


def test_empty_results_and_junk_items():
    assert parse_search(search_page([]), keyword="x", domain="com").listings == []
    parsed = parse_search(search_page([None, 3, "x", product()]), keyword="x", domain="com")
    assert len(parsed.listings) == 1
    assert (
        parse_search({"statusCode": 200, "statusMessage": "NOT_FOUND"}, keyword="x", domain="com").listings
        == []
    )
