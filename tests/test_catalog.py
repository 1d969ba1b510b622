"""The catalog backend (a local JSONL/CSV feed) and the backend registry."""

from __future__ import annotations

import json

import pytest

from agent.core.config import Settings
from tests.conftest_axesso import fixture_minilm  # noqa: F401 - fixtures are found by name
from tools.axesso import AxessoBackend
from tools.base import SearchQuery
from tools.catalog import (
    CatalogBackend,
    CatalogColumnsError,
    CatalogError,
    CatalogFormatError,
    CatalogNotFoundError,
    CatalogOptions,
    load_catalog,
)
from tools.links import LinksBackend
from tools.registry import CatalogNotConfiguredError, axesso_options, catalog_options, make_backend

ROWS = [
    {
        "title": "Fiskars Ergo Garden Trowel",
        "url": "https://shop.example/trowel",
        "price": 12.99,
        "rating": 4.7,
        "reviews": 3000,
        "image": "https://shop.example/trowel.jpg",
        "category": "Garden",
    },
    {
        "title": "Hand shovel for potting plants",
        "url": "https://shop.example/shovel",
        "price": "8,50 €",
        "rating": "4.1 out of 5 stars",
        "reviews": "90",
        "image": "",
        "category": "Garden",
    },
    {
        "title": "Burr Coffee Grinder",
        "url": "https://shop.example/grinder",
        "price": 49,
        "rating": 4.4,
        "reviews": 800,
        "image": None,
        "category": "Kitchen",
    },
    {"title": "Bamboo Cutting Board", "url": "https://shop.example/board", "category": "Kitchen"},
]


def write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    return path


def write_csv(path, header, lines):
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def jsonl(tmp_path):
    return write_jsonl(tmp_path / "shop.jsonl", ROWS)


# --- loading -----------------------------------------------------------------------------------------
def test_jsonl_rows_are_validated_tolerantly(jsonl):
    catalog = load_catalog(jsonl)
    assert catalog.skipped == 0 and len(catalog.rows) == 4
    shovel = catalog.rows[1]
    assert (shovel.price, shovel.rating, shovel.reviews, shovel.image) == (8.5, 4.1, 90, None)
    assert catalog.rows[3].price is None


def test_csv_with_a_bom_extra_columns_and_any_header_case(tmp_path):
    path = tmp_path / "shop.csv"
    path.write_text(
        "\ufeffTitle,URL,Price,Rating,Reviews,Image,Category,sku\n"
        'Fiskars Ergo Garden Trowel,https://shop.example/trowel,12.99,4.7,"3,000",,Garden,T1\n',
        encoding="utf-8",
    )
    (row,) = load_catalog(path).rows
    assert (row.title, row.reviews, row.price) == ("Fiskars Ergo Garden Trowel", 3000, 12.99)


def test_only_title_and_url_are_required(tmp_path):
    path = write_csv(tmp_path / "min.csv", "title,url", ["Trowel,https://shop.example/t"])
    assert load_catalog(path).rows[0].rating is None


def test_missing_file_says_how_to_fix(tmp_path):
    with pytest.raises(CatalogNotFoundError, match="Catalog file not found.*--catalog"):
        load_catalog(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(
    ("header", "missing"), [("name,link,price", "title, url"), ("title,price", "url"), ("url,price", "title")]
)
def test_missing_columns_are_named(tmp_path, header, missing):
    path = write_csv(tmp_path / "bad.csv", header, ["a,b,c"])
    with pytest.raises(CatalogColumnsError, match=f"lacks the column\\(s\\) {missing}") as error:
        load_catalog(path)
    assert isinstance(error.value, ValueError)


def test_missing_columns_in_jsonl(tmp_path):
    with pytest.raises(CatalogColumnsError, match="url"):
        load_catalog(write_jsonl(tmp_path / "bad.jsonl", [{"title": "Trowel"}]))


def test_unknown_format(tmp_path):
    path = tmp_path / "shop.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(CatalogFormatError, match=r"\.jsonl or \.csv"):
        load_catalog(path)


def test_invalid_rows_are_skipped_and_reported(tmp_path, minilm):
    rows = [
        *ROWS,
        {"title": "Evil", "url": "javascript:alert(1)"},
        {"title": "", "url": "https://shop.example/x"},
    ]
    path = write_jsonl(tmp_path / "shop.jsonl", rows)
    with path.open("a") as handle:
        handle.write("{not json\n")
    catalog = load_catalog(path)
    assert (len(catalog.rows), catalog.skipped) == (4, 3)
    outcome = CatalogBackend(catalog).search(SearchQuery(keyword="garden trowel"))
    assert (
        "skipped 3 invalid row(s) (first: line 5: Value error, url must be an absolute https:// URL)"
        in (outcome.warnings[0])
    )


def test_a_feed_without_any_valid_row_is_an_error(tmp_path):
    with pytest.raises(CatalogFormatError, match="no valid product row"):
        load_catalog(write_csv(tmp_path / "bad.csv", "title,url", ["Trowel,http://insecure.example/t"]))


# --- searching ---------------------------------------------------------------------------------------
def test_search_finds_by_meaning_and_spelling(jsonl, minilm):
    backend = CatalogBackend.from_options(CatalogOptions(path=jsonl))
    outcome = backend.search_many(
        [
            SearchQuery(keyword="garden trowel"),
            SearchQuery(keyword="coffee grinder"),
            SearchQuery(keyword="chainsaw"),
        ]
    )
    by_type: dict[str, list[str]] = {}
    for item in outcome.listings:
        by_type.setdefault(item.product, []).append(item.title)
    assert by_type["garden trowel"][0] == "Fiskars Ergo Garden Trowel"
    assert "Hand shovel for potting plants" in by_type["garden trowel"]  # same meaning, other words
    assert by_type["coffee grinder"] == ["Burr Coffee Grinder"]
    assert "chainsaw" not in by_type
    assert outcome.warnings == ["Catalog shop.jsonl has nothing matching 'chainsaw'."]
    assert outcome.calls == 0
    assert all(item.url.startswith("https://shop.example/") for item in outcome.listings)


# --- registry ----------------------------------------------------------------------------------------
def test_registry_builds_each_backend(tmp_path, jsonl):
    assert isinstance(make_backend(Settings(home=tmp_path, backend="links")), LinksBackend)
    assert isinstance(make_backend(Settings(home=tmp_path, backend="axesso")), AxessoBackend)
    catalog = make_backend(Settings(home=tmp_path, backend="catalog", catalog=jsonl))
    assert isinstance(catalog, CatalogBackend) and len(catalog.catalog.rows) == 4


def test_registry_gives_each_backend_only_its_own_options(tmp_path, jsonl):
    settings = Settings(
        home=tmp_path, rapidapi_key="rk-secret-123", http_read_timeout=7, search_concurrency=3, no_cache=True,
        ratelimit_floor=2, cache_ttl_hours=0.5, catalog=jsonl, model="some/model", top_k=3,
    )
    axesso = axesso_options(settings)
    assert set(type(axesso).model_fields) == {
        "api_key", "base_url", "http", "cache_file", "cache_ttl_seconds", "read_cache", "concurrency",
        "ratelimit_floor",
    }
    assert (axesso.http.read_timeout, axesso.concurrency, axesso.read_cache) == (7, 3, False)
    assert (axesso.ratelimit_floor, axesso.cache_ttl_seconds) == (2, 1800)
    assert axesso.cache_file == tmp_path / "search-cache.sqlite3"
    assert "rk-secret-123" not in repr(axesso) + axesso.model_dump_json()
    assert catalog_options(settings) == CatalogOptions(path=jsonl)


def test_registry_catalog_errors_are_value_errors_that_say_how_to_fix(tmp_path):
    with pytest.raises(CatalogNotConfiguredError, match="--catalog PATH"):
        make_backend(Settings(home=tmp_path, backend="catalog"))
    with pytest.raises(CatalogNotFoundError):
        make_backend(Settings(home=tmp_path, backend="catalog", catalog=tmp_path / "missing.csv"))
    assert issubclass(CatalogError, ValueError)
