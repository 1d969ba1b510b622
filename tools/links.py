"""The ``links`` backend: one marketplace search page per product type. Needs no key and no network."""

from __future__ import annotations

from urllib.parse import urlencode

from agent.core.schemas import Listing
from tools.base import SearchBackend, SearchOutcome, SearchQuery


def amazon_search_url(keyword: str, domain: str = "com") -> str:
    """The Amazon search page for ``keyword`` on ``amazon.<domain>``, properly URL-encoded."""
    return f"https://www.amazon.{domain}/s?{urlencode({'k': keyword})}"


class LinksBackend(SearchBackend):
    """Marketplace search links: always available, the fallback of every other backend."""

    name = "links"

    def search(self, query: SearchQuery) -> SearchOutcome:
        listing = Listing(
            product=query.keyword,
            title=f"Search Amazon for “{query.keyword}”",
            url=amazon_search_url(query.keyword, query.domain),
        )
        return SearchOutcome(listings=[listing])
