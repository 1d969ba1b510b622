"""A local stand-in for the Axesso search API, shared by the bench and the tests.

The builders write Axesso's documented response schema (the 2025 ``statusCode`` page around
``searchProductDetails`` items): :func:`product` one item, :func:`search_page` a page around items, and
:func:`marketplace_page` three deterministic listings for any keyword. :class:`FakeAxesso` serves
:func:`marketplace_page` from a thread on 127.0.0.1 after a fixed delay: the real API takes ~4 s per call,
the bench injects a smaller, fixed one (1 s by default), so what it measures is how a pipeline waits on the
network (one call after another, or several at once) and how many calls it makes at all.

    with FakeAxesso(delay_s=1.0) as server:
        settings = settings.model_copy(update={"axesso_url": server.url, ...})
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tools.axesso_client import REMAINING_HEADER, SEARCH_PATH

__all__ = ["SEARCH_PATH", "FakeAxesso", "fake_asin", "marketplace_page", "product", "search_page"]

#: (adjective, price, rating, reviews) of the three listings :func:`marketplace_page` gives each keyword.
_OFFERS = (("Heavy duty", 24.99, "4.7", 3000), ("Compact", 14.99, "4.4", 850), ("Basic", 9.99, "4.1", 120))


def fake_asin(text: str) -> str:
    """A stable, valid ASIN (10 upper-case letters and digits) per text."""
    return "B" + hashlib.sha256(text.encode()).hexdigest().upper()[:9]


def product(**fields: Any) -> dict[str, Any]:
    """One ``searchProductDetails`` item as Axesso's 2025 shape writes it; ``fields`` override."""
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
    products: list[Any], keyword: str = "garden trowel", domain: str = "com", **fields: Any
) -> dict[str, Any]:
    """A 2025-shape search response around ``products``; ``fields`` add or override page fields."""
    page: dict[str, Any] = {
        "statusCode": 200,
        "statusMessage": "FOUND",
        "keyword": keyword,
        "domainCode": domain,
        "page": 1,
        "resultCount": len(products),
        "similarKeywords": [],
        "searchProductDetails": products,
    }
    page.update(fields)
    return page


def marketplace_page(keyword: str, domain: str = "com") -> dict[str, Any]:
    """Three listings for ``keyword``, the same on every call."""
    items = []
    for adjective, price, rating, reviews in _OFFERS:
        title = f"{adjective} {keyword}"
        asin = fake_asin(title)
        items.append(
            product(
                productDescription=title,
                asin=asin,
                countReview=reviews,
                imgUrl=f"https://m.media-amazon.com/images/I/{asin}._AC_UL320_.jpg",
                price=price,
                retailPrice=round(price * 1.2, 2),
                productRating=f"{rating} out of 5 stars",
                dpUrl=f"/dp/{asin}",
            )
        )
    return search_page(items, keyword, domain)


class FakeAxesso:
    """A threaded HTTP server speaking Axesso's search schema; every call waits ``delay_s`` first."""

    def __init__(self, delay_s: float = 1.0) -> None:
        self.delay_s = delay_s
        self._calls = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def calls(self) -> int:
        """Search calls answered so far."""
        with self._lock:
            return self._calls

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the server is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _count(self) -> None:
        with self._lock:
            self._calls += 1

    def __enter__(self) -> FakeAxesso:  # noqa: PYI034 - Self needs Python 3.11
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like the real API behind RapidAPI

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path != SEARCH_PATH:
                    self._send(404, {"logref": "error", "message": "no such endpoint"})
                    return
                query = parse_qs(url.query)
                keyword = query.get("keyword", [""])[0]
                domain = query.get("domainCode", ["com"])[0]
                fake._count()
                time.sleep(fake.delay_s)
                self._send(200, marketplace_page(keyword, domain))

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                # A large budget, so the client's call-budget guard never stops a bench.
                self.send_header(REMAINING_HEADER, "1000000")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-axesso", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None
