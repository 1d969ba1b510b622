"""The axesso backend against a local server speaking Axesso's schema: retries, cache, fallbacks, secrecy.

Every test counts the HTTP calls the server saw, so "no retry on 4xx" and "a cache hit costs nothing"
are checked, not assumed. No test touches the network.
"""

from __future__ import annotations

import email.utils
import logging
import time

import pytest

from agent.bench.fake_axesso import SEARCH_PATH, product, search_page
from agent.core.config import Settings
from agent.core.http import HttpPolicy, parse_retry_after
from tests.conftest_axesso import (  # noqa: F401 - fixtures are found by name
    FAKE_KEY,
    fixture_axesso_server,
    fixture_clean_env,
    fixture_server,
    fixture_slow_handler,
    make_settings,
)
from tools import cache as cache_module
from tools.axesso import AxessoBackend, cache_key
from tools.base import SearchQuery
from tools.registry import make_backend

pytestmark = pytest.mark.usefixtures("clean_env")


def q(keyword: str = "garden trowel", **fields) -> SearchQuery:
    return SearchQuery(keyword=keyword, **fields)


def calls(server) -> int:
    return len(server.log)


@pytest.fixture
def settings(tmp_path, server):
    return make_settings(tmp_path / "home", server.url_for("").rstrip("/"))


# --- success and the request we send ------------------------------------------------------------------
def test_success_returns_validated_listings_and_sends_the_expected_request(server, settings):
    server.expect_request(
        SEARCH_PATH,
        query_string={
            "domainCode": "co.uk",
            "keyword": "garden trowel",
            "page": "2",
            "sortBy": "review-rank",
        },
        headers={
            "X-RapidAPI-Key": FAKE_KEY,
            "X-RapidAPI-Host": "axesso-axesso-amazon-data-service-v1.p.rapidapi.com",
        },
    ).respond_with_json(
        search_page([product(), product(asin="B000000002", dpUrl="https://www.amazon.co.uk/dp/B000000002")])
    )

    outcome = make_backend(settings).search(q(domain="co.uk", page=2, sort="review-rank"))

    assert calls(server) == 1 and outcome.calls == 1 and outcome.cache_hits == 0
    assert outcome.warnings == []
    first, second = outcome.listings
    assert (
        first.url
        == "https://www.amazon.co.uk/Fiskars-Ergo-Trowel/dp/B00002N6U4/ref=sr_1_1?keywords=garden+trowel"
    )
    assert (first.price, first.rating, first.reviews, first.prime) == (12.99, 4.7, 3000, True)
    assert first.product == "garden trowel"
    assert second.url == "https://www.amazon.co.uk/dp/B000000002"


def test_missing_and_extra_fields(server, settings):
    bare = {"productDescription": "Trowel", "asin": "B000000003", "somethingNew": [1, 2]}
    server.expect_request(SEARCH_PATH).respond_with_json(
        search_page([bare, product(price=None, productRating=None, countReview=None)], newPageField={"x": 1})
    )
    outcome = make_backend(settings).search(q())
    assert outcome.listings[0].url == "https://www.amazon.com/dp/B000000003"
    assert all(x.price is None and x.rating is None for x in outcome.listings)


def test_older_response_shape(server, settings):
    old = {
        "responseStatus": "PRODUCT_FOUND_RESPONSE",
        "responseMessage": "Product successfully found!",
        "foundProducts": ["B07KY8VKGK"],
        "searchProductDetails": [
            {"productDescription": "JETech Case", "asin": "B07KY8VKGK", "countReview": 24079}
        ],
    }
    server.expect_request(SEARCH_PATH).respond_with_json(old)
    (only,) = make_backend(settings).search(q("phone case")).listings
    assert (only.url, only.reviews) == ("https://www.amazon.com/dp/B07KY8VKGK", 24079)


def test_relative_and_absolute_dp_urls_kept_javascript_and_foreign_dropped(server, settings):
    server.expect_request(SEARCH_PATH).respond_with_json(
        search_page(
            [
                product(asin="B000000001", dpUrl="/a/dp/B000000001"),
                product(asin="B000000002", dpUrl="https://www.amazon.com/b/dp/B000000002"),
                product(asin="B000000003", dpUrl="javascript:alert(1)"),
                product(asin="B000000004", dpUrl="https://evil.example/dp/B000000004"),
            ]
        )
    )
    outcome = make_backend(settings).search(q())
    assert [x.url for x in outcome.listings] == [
        "https://www.amazon.com/a/dp/B000000001",
        "https://www.amazon.com/b/dp/B000000002",
    ]


# --- retries ------------------------------------------------------------------------------------------
def test_429_with_retry_after_is_waited_out_then_succeeds(server, settings):
    server.expect_oneshot_request(SEARCH_PATH).respond_with_json(
        {"message": "Too many requests"}, status=429, headers={"Retry-After": "1"}
    )
    server.expect_request(SEARCH_PATH).respond_with_json(search_page([product()]))
    started = time.monotonic()
    outcome = make_backend(settings).search(q())
    assert time.monotonic() - started >= 1.0  # the server's Retry-After, not our tiny backoff
    assert calls(server) == 2 and outcome.calls == 2
    assert len(outcome.listings) == 1 and outcome.warnings == []


def test_retry_after_over_the_cap_ends_retries_at_once(server, settings):
    server.expect_request(SEARCH_PATH).respond_with_json(
        {"message": "slow down"}, status=429, headers={"Retry-After": "3600"}
    )
    started = time.monotonic()
    outcome = make_backend(settings).search(q())
    assert time.monotonic() - started < 1.0
    assert calls(server) == 1
    assert outcome.listings[0].url == "https://www.amazon.com/s?k=garden+trowel"  # the links fallback
    assert "rate-limited" in outcome.warnings[0]


def test_429_with_no_calls_left_is_not_retried(server, settings):
    server.expect_request(SEARCH_PATH).respond_with_json(
        {"message": "quota"}, status=429, headers={"x-ratelimit-requests-remaining": "0"}
    )
    outcome = make_backend(settings).search(q())
    assert calls(server) == 1
    assert "links" in outcome.warnings[0]


def test_5xx_twice_then_success(server, settings):
    server.expect_oneshot_request(SEARCH_PATH).respond_with_data("upstream down", status=502)
    server.expect_oneshot_request(SEARCH_PATH).respond_with_json({"message": "oops"}, status=500)
    server.expect_request(SEARCH_PATH).respond_with_json(search_page([product()]))
    outcome = make_backend(settings).search(q())
    assert calls(server) == 3 and outcome.calls == 3
    assert len(outcome.listings) == 1 and outcome.warnings == []


def test_5xx_every_time_falls_back_to_a_link_after_max_attempts(server, settings):
    server.expect_request(SEARCH_PATH).respond_with_data("down", status=503)
    outcome = make_backend(settings).search(q())
    assert calls(server) == settings.http_max_attempts == outcome.calls
    (link,) = outcome.listings
    assert link.url == "https://www.amazon.com/s?k=garden+trowel"
    assert outcome.warnings == [
        "Axesso failed (HTTP 503 after 3 attempts) for 'garden trowel'; showing Amazon search links instead."
    ]
    assert outcome.outages == outcome.warnings  # Axesso did not answer: the UI says so at once


def test_read_timeout_is_retried(server, tmp_path, slow_handler):
    settings = make_settings(tmp_path, server.url_for("").rstrip("/"), http_read_timeout=0.2)
    handler = slow_handler(0.6, search_page([product()]))
    server.expect_oneshot_request(SEARCH_PATH).respond_with_handler(handler)
    server.expect_request(SEARCH_PATH).respond_with_json(search_page([product()]))
    outcome = make_backend(settings).search(q())
    assert outcome.calls == 2 and handler.arrived == 1
    assert len(outcome.listings) == 1 and outcome.listings[0].asin == "B00002N6U4"


def test_read_timeout_every_time_falls_back(server, tmp_path, slow_handler):
    settings = make_settings(
        tmp_path, server.url_for("").rstrip("/"), http_read_timeout=0.1, http_max_attempts=2
    )
    handler = slow_handler(0.3, search_page([product()]))
    server.expect_request(SEARCH_PATH).respond_with_handler(handler)
    outcome = make_backend(settings).search(q())
    expected = (
        "Axesso could not be reached (timed out after 2 attempts) for 'garden trowel'; "
        "showing Amazon search links instead."
    )
    assert outcome.warnings == [expected] == outcome.outages
    assert outcome.calls == 2 == handler.arrived and outcome.listings[0].url.startswith(
        "https://www.amazon.com/s?"
    )


def test_server_down_still_answers_with_links(tmp_path):
    settings = make_settings(tmp_path)  # nothing listens on the discard port
    outcome = make_backend(settings).search_many([q("garden trowel"), q("kneeling pad")])
    assert [x.url for x in outcome.listings] == [
        "https://www.amazon.com/s?k=garden+trowel",
        "https://www.amazon.com/s?k=kneeling+pad",
    ]
    assert len(outcome.warnings) == 1  # one warning for the same reason, naming both types
    assert "'garden trowel', 'kneeling pad'" in outcome.warnings[0]
    assert outcome.outages == outcome.warnings


# --- answers that are not results -----------------------------------------------------------------------
def test_malformed_json_is_not_retried_nor_cached(server, settings):
    server.expect_request(SEARCH_PATH).respond_with_data(
        '{"searchProductDetails": [', content_type="application/json"
    )
    backend = make_backend(settings)
    outcome = backend.search(q())
    assert calls(server) == 1
    assert "malformed JSON" in outcome.warnings[0]
    assert outcome.outages == outcome.warnings
    backend.search(q())
    assert calls(server) == 2  # not cached


def test_empty_results_fall_back_to_a_link_and_are_cached(server, settings):
    server.expect_request(SEARCH_PATH).respond_with_json(search_page([]))
    outcome = make_backend(settings).search(q())
    assert outcome.listings[0].url == "https://www.amazon.com/s?k=garden+trowel"
    assert "found no listings" in outcome.warnings[0]
    assert outcome.outages == []  # Axesso answered: nothing is down
    again = make_backend(settings).search(q())
    assert calls(server) == 1 and again.cache_hits == 1


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            {"logref": "error", "message": "Required String parameter 'keyword' is not present", "links": []},
            "refused the request (HTTP 400: Required String parameter 'keyword' is not present)",
        ),
        (
            404,
            {
                "logref": "error",
                "message": "could not find product for parametes domainCode: com",
                "links": [],
            },
            "found no listings",
        ),
        (
            401,
            {"message": "Invalid API key."},
            "rejected the key (HTTP 401: Invalid API key.): check RAPIDAPI_KEY",
        ),
        (403, {"message": "You are not subscribed to this API."}, "rejected the key (HTTP 403"),
    ],
)
def test_4xx_is_not_retried(server, settings, status, body, expected):
    server.expect_request(SEARCH_PATH).respond_with_json(body, status=status)
    outcome = make_backend(settings).search(q())
    assert calls(server) == 1 and outcome.calls == 1
    assert expected in outcome.warnings[0]
    assert outcome.outages == []  # Axesso answered, with a refusal: the warning says what to fix
    assert outcome.listings[0].url == "https://www.amazon.com/s?k=garden+trowel"


def test_a_refused_key_stops_further_calls(server, settings):
    server.expect_request(SEARCH_PATH).respond_with_json({"message": "Invalid API key."}, status=403)
    backend = make_backend(settings)
    first = backend.search(q("garden trowel"))
    outcome = backend.search(q("kneeling pad"))
    assert calls(server) == 1
    expected = (
        "Axesso rejected the key (HTTP 403: Invalid API key.): check RAPIDAPI_KEY; "
        "showing Amazon search links instead."
    )
    assert outcome.warnings == first.warnings == [expected]


def test_error_body_in_a_200_falls_back(server, settings):
    server.expect_request(SEARCH_PATH).respond_with_json({"logref": "error", "message": "bad domainCode"})
    outcome = make_backend(settings).search(q())
    assert "answered with an error (bad domainCode)" in outcome.warnings[0]


# --- key, cache, concurrency, call budget --------------------------------------------------------------
def test_missing_key_makes_no_call_and_warns_once(server, tmp_path):
    settings = make_settings(tmp_path, server.url_for("").rstrip("/"), rapidapi_key=None)
    outcome = make_backend(settings).search_many([q("garden trowel"), q("kneeling pad")])
    assert calls(server) == 0
    assert len(outcome.listings) == 2
    expected = (
        "Axesso is not used (RAPIDAPI_KEY is not set: get a key for the Axesso Amazon Data Service on "
        "rapidapi.com); showing Amazon search links instead."
    )
    assert outcome.warnings == [expected] and outcome.outages == []
    # Account-wide problems name no product type, so separate searches warn alike (shown once).
    assert make_backend(settings).search(q("garden gloves")).warnings == outcome.warnings


def test_blank_key_counts_as_missing(server, tmp_path):
    settings = make_settings(tmp_path, server.url_for("").rstrip("/"), rapidapi_key="   ")
    assert "RAPIDAPI_KEY is not set" in make_backend(settings).search(q()).warnings[0]
    assert calls(server) == 0


def test_repeated_query_is_served_from_the_disk_cache(server, settings):
    server.expect_request(SEARCH_PATH).respond_with_json(search_page([product()]))
    first = make_backend(settings).search_many([q("garden trowel")])
    second = make_backend(settings).search_many([q("Garden  Trowel")])  # a new process, same folded key
    assert calls(server) == 1
    assert (first.calls, second.calls, second.cache_hits) == (1, 0, 1)
    assert second.listings[0].product == "Garden  Trowel"
    assert [x.url for x in second.listings] == [x.url for x in first.listings]
    assert (settings.home_dir / "search-cache.sqlite3").exists()


def test_cache_key_separates_domain_page_and_sort():
    keys = {cache_key(q()), cache_key(q(domain="de")), cache_key(q(page=2)), cache_key(q(sort="review-rank"))}
    assert len(keys) == 4


def test_no_cache_bypasses_reads_but_refreshes(server, settings):
    server.expect_request(SEARCH_PATH).respond_with_json(search_page([product()]))
    make_backend(settings).search(q())
    make_backend(settings.model_copy(update={"no_cache": True})).search(q())
    assert calls(server) == 2
    make_backend(settings).search(q())
    assert calls(server) == 2


def test_a_corrupt_cache_does_not_break_search(server, settings):
    server.expect_request(SEARCH_PATH).respond_with_json(search_page([product()]))
    settings.home_dir.mkdir(parents=True)
    (settings.home_dir / "search-cache.sqlite3").write_bytes(b"\x00garbage" * 64)
    outcome = make_backend(settings).search(q())
    assert len(outcome.listings) == 1 and calls(server) == 1


def test_product_types_are_searched_concurrently_and_deduplicated(server, settings, slow_handler):
    server.expect_request(SEARCH_PATH).respond_with_handler(slow_handler(0.4, search_page([product()])))
    keywords = ["garden trowel", "kneeling pad", "garden gloves", "pruning shears"]
    started = time.monotonic()
    outcome = make_backend(settings).search_many([q(k) for k in keywords] + [q("garden trowel")])
    elapsed = time.monotonic() - started
    assert calls(server) == 4  # the duplicate was searched once
    assert elapsed < 4 * 0.4 * 0.75, f"took {elapsed:.2f} s: not concurrent"
    assert [x.product for x in outcome.listings] == keywords  # in the order asked


def test_ratelimit_floor_stops_calls_and_is_remembered(server, tmp_path):
    settings = make_settings(tmp_path, server.url_for("").rstrip("/"), ratelimit_floor=5)
    server.expect_request(SEARCH_PATH).respond_with_json(
        search_page([product()]),
        headers={"x-ratelimit-requests-remaining": "3", "x-ratelimit-requests-reset": "3600"},
    )
    backend = make_backend(settings)
    first = backend.search(q("garden trowel"))
    assert len(first.listings) == 1 and first.warnings == []  # this answer is already paid for
    second = backend.search(q("kneeling pad"))
    assert calls(server) == 1
    assert "RapidAPI reports 3 calls left, under the floor of 5" in second.warnings[0]
    assert second.listings[0].url == "https://www.amazon.com/s?k=kneeling+pad"
    # A later run remembers the budget and makes no call either.
    assert "floor" in make_backend(settings).search(q("garden gloves")).warnings[0]
    assert calls(server) == 1


def test_remembered_budget_ends_at_rapidapis_reset(server, tmp_path, monkeypatch):
    settings = make_settings(tmp_path, server.url_for("").rstrip("/"), ratelimit_floor=5)
    server.expect_request(SEARCH_PATH).respond_with_json(
        search_page([product()]),
        headers={"x-ratelimit-requests-remaining": "3", "x-ratelimit-requests-reset": "3600"},
    )
    now = [time.time()]
    monkeypatch.setattr(cache_module.time, "time", lambda: now[0])
    make_backend(settings).search(q("garden trowel"))
    now[0] += 3000
    make_backend(settings).search(q("kneeling pad"))  # blocked, and must not extend the block
    assert calls(server) == 1
    now[0] += 700  # past the reset
    assert make_backend(settings).search(q("garden gloves")).warnings == []
    assert calls(server) == 2
    # --no-cache also ignores a remembered budget (the user asked for fresh results).
    make_backend(settings.model_copy(update={"no_cache": True})).search(q("garden gloves"))
    assert calls(server) == 3


def test_the_key_never_leaks(server, settings, caplog, capsys):
    """Through successes, retries, failures and an error body that echoes the key back."""
    server.expect_oneshot_request(SEARCH_PATH).respond_with_data("down", status=503)
    server.expect_oneshot_request(SEARCH_PATH).respond_with_json(search_page([product()]))
    server.expect_request(SEARCH_PATH).respond_with_json(
        {"logref": "error", "message": f"bad key {FAKE_KEY} for keyword"}, status=400
    )
    caplog.set_level(logging.DEBUG)
    backend = make_backend(settings)
    outcomes = [backend.search(q("garden trowel")), backend.search(q("kneeling pad"))]
    broken = make_backend(make_settings(settings.home_dir / "other"))  # connection refused
    outcomes.append(broken.search(q("garden gloves")))
    printed = capsys.readouterr()
    texts = [
        caplog.text,
        printed.out,
        printed.err,
        repr(backend),
        str(backend),
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        *(o.model_dump_json() for o in outcomes),
        *(r.getMessage() for r in caplog.records),
    ]
    assert "***" in outcomes[1].warnings[0]  # the echoed key was scrubbed
    for text in texts:
        assert FAKE_KEY not in text


def test_environment_variables_configure_the_backend(server, tmp_path, monkeypatch):
    server.expect_request(SEARCH_PATH, headers={"X-RapidAPI-Key": FAKE_KEY}).respond_with_json(
        search_page([product()])
    )
    monkeypatch.setenv("RAPIDAPI_KEY", FAKE_KEY)
    monkeypatch.setenv("WHAZZAT_AXESSO_URL", server.url_for("").rstrip("/"))
    monkeypatch.setenv("WHAZZAT_HOME", str(tmp_path))
    monkeypatch.setenv("WHAZZAT_BACKEND", "axesso")
    backend = make_backend(Settings())
    assert isinstance(backend, AxessoBackend)
    assert len(backend.search(q()).listings) == 1 and calls(server) == 1


def test_sponsored_and_prime_flags_survive(server, settings):
    server.expect_request(SEARCH_PATH).respond_with_json(search_page([product(sponsored=True, prime=False)]))
    (only,) = make_backend(settings).search(q()).listings
    assert only.sponsored and not only.prime


def test_the_http_policy_defaults_are_the_settings_defaults():
    assert HttpPolicy() == HttpPolicy.from_settings(Settings())
    assert HttpPolicy.from_settings(Settings(http_max_attempts=4)).max_retries == 3


@pytest.mark.parametrize(
    ("header", "seconds"), [("3", 3.0), ("0.5", 0.5), ("-2", 0.0), ("soon", None), ("", None), (None, None)]
)
def test_retry_after_values(header, seconds):
    assert parse_retry_after(header) == seconds


def test_retry_after_as_an_http_date():
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 <= parse_retry_after(in_a_minute) <= 60
    assert parse_retry_after(email.utils.formatdate(time.time() - 60, usegmt=True)) == 0.0
