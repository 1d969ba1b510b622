"""Shared fixtures and builders for the search-backend and ranking tests (no network).

Test modules import fixtures by function name (``fixture_server`` provides the fixture ``server``, so a
test's parameter does not shadow the import) and the builders (``make_settings``, ``listing``) directly.
Axesso's responses come from the one fake of the project, :mod:`agent.bench.fake_axesso` (``SEARCH_PATH``,
``product``, ``search_page``), served here by a threaded local server, so slow handlers and concurrent
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

from agent.core.config import Settings
from agent.core.schemas import Listing
from tests.httpserver import threaded_httpserver

#: A fake RapidAPI key; the tests assert it never leaks into output, logs, warnings or reprs.
FAKE_KEY = "test-key-not-real"
_serial = itertools.count(1)


@pytest.fixture(scope="session", name="axesso_server")
def fixture_axesso_server() -> Iterator[HTTPServer]:
    """A threaded local HTTP server for the session; tests use ``server``, which clears it."""
    with threaded_httpserver() as server:
        yield server


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
    from agent.core.embeddings import get_embedder

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
