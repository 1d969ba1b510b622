"""Shared fixtures and builders for the search-backend and ranking tests (no network).

Test modules import fixtures by function name (``fixture_server`` provides the fixture ``server``, so a
test's parameter does not shadow the import) and the builders (``make_settings``, ``product``...) directly.
The local server speaks Axesso's schema (DESIGN.md §5); it is threaded so slow handlers and concurrent
searches behave like the real API.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from agent.config import Settings
from agent.schemas import Listing

#: A fake RapidAPI key; the tests assert it never leaks into output, logs, warnings or reprs.
FAKE_KEY = "test-key-not-real"
SEARCH_PATH = "/amz/amazon-search-by-keyword-asin"
_serial = itertools.count(1)


@pytest.fixture(scope="session", name="axesso_server")
def fixture_axesso_server() -> Iterator[HTTPServer]:
    """A threaded local HTTP server for the session; tests use ``server``, which clears it."""
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture(name="server")
def fixture_server(axesso_server: HTTPServer) -> Iterator[HTTPServer]:
    axesso_server.clear()
    yield axesso_server
    axesso_server.clear()


class SlowHandler:
    """Answers ``body`` after ``seconds``; counts requests on arrival (the server logs them on answer)."""

    def __init__(self, seconds: float, body: dict[str, Any]) -> None:
        self.seconds, self.body = seconds, body
        self.arrived = 0
        self._active = 0
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        with self._lock:
            self.arrived += 1
            self._active += 1
        try:
            time.sleep(self.seconds)
            return Response(json.dumps(self.body), content_type="application/json")
        finally:
            with self._lock:
                self._active -= 1

    def wait_idle(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self._active and time.monotonic() < deadline:
            time.sleep(0.01)


@pytest.fixture(name="slow_handler")
def fixture_slow_handler() -> Iterator[Any]:
    """Factory of :class:`SlowHandler`; waits for their requests to finish so no test sees another's."""
    made: list[SlowHandler] = []

    def make(seconds: float, body: dict[str, Any]) -> SlowHandler:
        made.append(SlowHandler(seconds, body))
        return made[-1]

    yield make
    for handler in made:
        handler.wait_idle()


@pytest.fixture(name="clean_env")
def fixture_clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No real key or home from the developer's environment."""
    for name in (
        "RAPIDAPI_KEY",
        "WHAZZAT_RAPIDAPI_KEY",
        "WHAZZAT_AXESSO_URL",
        "WHAZZAT_HOME",
        "WHAZZAT_NO_CACHE",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session", name="minilm")
def fixture_minilm() -> object:
    """Load MiniLM once per session (a few seconds); tests that rank or search catalogs use it."""
    from agent.embeddings import get_embedder

    return get_embedder()


def make_settings(home: Path, base_url: str = "http://127.0.0.1:9", **overrides: Any) -> Settings:
    """Settings for the axesso backend against ``base_url`` with test-speed retries.

    The default URL is the discard port on localhost: nothing listens there, nothing leaves the machine.
    """
    values: dict[str, Any] = {
        "home": home,
        "backend": "axesso",
        "rapidapi_key": FAKE_KEY,
        "axesso_url": base_url,
        "http_connect_timeout": 1.0,
        "http_read_timeout": 2.0,
        "http_max_attempts": 3,
        "http_backoff_initial": 0.01,
        "http_backoff_max": 0.02,
        "http_retry_after_cap": 2.0,
        "ratelimit_floor": 0,
    }
    values.update(overrides)
    return Settings(**values)


def product(**fields: Any) -> dict[str, Any]:
    """One ``searchProductDetails`` entry as Axesso's 2025 shape writes it; ``fields`` override."""
    item: dict[str, Any] = {
        "productDescription": "Fiskars Ergo Garden Trowel, Heavy Duty Hand Shovel",
        "asin": "B00002N6U4",
        "countReview": 3000,
        "imgUrl": "https://m.media-amazon.com/images/I/71trowel._AC_UL320_.jpg",
        "price": 12.99,
        "retailPrice": 15.99,
        "productRating": "4.7 out of 5 stars",
        "prime": True,
        "dpUrl": "/Fiskars-Ergo-Trowel/dp/B00002N6U4/ref=sr_1_1?keywords=garden+trowel",
        "sponsored": False,
        "salesVolume": "10K+ bought in past month",
    }
    item.update(fields)
    return item


def search_page(
    products: list[dict[str, Any]], keyword: str = "garden trowel", **fields: Any
) -> dict[str, Any]:
    """A 2025-shape search response around ``products``."""
    page: dict[str, Any] = {
        "statusCode": 200,
        "statusMessage": "FOUND",
        "keyword": keyword,
        "domainCode": "com",
        "page": 1,
        "resultCount": len(products),
        "similarKeywords": [],
        "searchProductDetails": products,
    }
    page.update(fields)
    return page


def listing(product: str = "garden trowel", **fields: Any) -> Listing:
    """A product listing with sensible defaults and a unique URL, for ranking tests."""
    values: dict[str, Any] = {
        "title": f"Good {product}",
        "url": f"https://www.amazon.com/dp/B{next(_serial):09d}",
        "price": 20.0,
        "rating": 4.5,
        "reviews": 1000,
        "asin": None,
    }
    values.update(fields)
    return Listing(product=product, **values)
