"""A local stand-in for the Axesso search API: a thread on 127.0.0.1 that answers after a fixed delay.

The real API takes ~4 s per call (DESIGN.md §5); the bench injects a smaller, fixed delay (1 s by default)
so what it measures is how a pipeline waits on the network: one call after another, or several at once,
and how many calls it makes at all. Answers are deterministic per keyword and follow Axesso's 2025 shape.

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

SEARCH_PATH = "/amz/amazon-search-by-keyword-asin"
_OFFERS = (("Heavy duty", 24.99, "4.7", 3000), ("Compact", 14.99, "4.4", 850), ("Basic", 9.99, "4.1", 120))


def _asin(text: str) -> str:
    """A stable, valid ASIN (10 upper-case letters and digits) per title."""
    digest = hashlib.sha256(text.encode()).hexdigest().upper()
    return "B" + digest[:9]


def search_page(keyword: str, domain: str = "com") -> dict[str, Any]:
    """Three listings for ``keyword``, as Axesso's 2025 search response writes them."""
    products = []
    for adjective, price, rating, reviews in _OFFERS:
        title = f"{adjective} {keyword}"
        asin = _asin(title)
        products.append(
            {
                "productDescription": title,
                "asin": asin,
                "countReview": reviews,
                "imgUrl": f"https://m.media-amazon.com/images/I/{asin}._AC_UL320_.jpg",
                "price": price,
                "retailPrice": round(price * 1.2, 2),
                "productRating": f"{rating} out of 5 stars",
                "prime": True,
                "dpUrl": f"/dp/{asin}",
                "sponsored": False,
            }
        )
    return {
        "statusCode": 200,
        "statusMessage": "FOUND",
        "keyword": keyword,
        "domainCode": domain,
        "page": 1,
        "resultCount": len(products),
        "similarKeywords": [],
        "searchProductDetails": products,
    }


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
                self._send(200, search_page(keyword, domain))

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                # A large budget, so the client's call-budget guard never stops a bench.
                self.send_header("x-ratelimit-requests-remaining", "1000000")
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
