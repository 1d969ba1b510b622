"""The local HTTP server the test fakes run on: pytest-httpserver, threaded, on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pytest_httpserver import HTTPServer


@contextmanager
def threaded_httpserver() -> Iterator[HTTPServer]:
    """A started server that answers requests side by side, so slow handlers and concurrent clients
    behave as with a real server; stopped on exit."""
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        if server.is_running():
            server.stop()
