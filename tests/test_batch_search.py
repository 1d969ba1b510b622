"""SharedSearch: each distinct product type searched once per batch, concurrently, with honest counts."""

from __future__ import annotations

import threading
import time

from agent.batch.search import SharedSearch
from agent.core.schemas import Listing
from tools.base import SearchBackend, SearchOutcome, SearchQuery


class SlowRemote(SearchBackend):
    """Answers like a remote API: one call per search, some from its cache, slowly."""

    name = "slow"

    def __init__(self, cached: set[str] = frozenset()) -> None:
        self.cached = cached
        self.searched: list[str] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()

    def search(self, query: SearchQuery) -> SearchOutcome:
        with self.lock:
            self.searched.append(query.keyword)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(0.05)
        with self.lock:
            self.in_flight -= 1
        hit = query.keyword in self.cached
        listing = Listing(
            product=query.keyword.lower(), title=f"A {query.keyword}", url="https://www.amazon.com/dp/X"
        )
        return SearchOutcome(
            listings=[listing],
            warnings=[f"note about {query.keyword}"],
            calls=0 if hit else 1,
            cache_hits=int(hit),
        )


def q(keyword: str, domain: str = "com") -> SearchQuery:
    return SearchQuery(keyword=keyword, domain=domain)


def test_prefetch_searches_each_distinct_type_once_concurrently() -> None:
    remote = SlowRemote(cached={"tent"})
    shared = SharedSearch(remote, concurrency=4)
    shared.prefetch([q("garden trowel"), q("Garden  Trowel"), q("tent"), q("kettle"), q("yoga mat")])
    assert sorted(remote.searched) == ["garden trowel", "kettle", "tent", "yoga mat"]
    assert 2 <= remote.max_in_flight <= 4
    assert shared.stats.model_dump() == {"searched": 4, "calls": 3, "cache_hits": 1, "reused": 0}


def test_later_needs_reuse_earlier_answers() -> None:
    remote = SlowRemote()
    shared = SharedSearch(remote)
    first = shared.search_many([q("garden trowel"), q("tent")])
    second = shared.search_many([q("Garden Trowel"), q("kettle")])
    assert sorted(remote.searched) == ["garden trowel", "kettle", "tent"]
    assert len(remote.searched) == 3
    assert shared.stats.reused == 1
    # Listings carry the product type as this need spelled it, so ranking can match them.
    assert [listing.product for listing in first.listings] == ["garden trowel", "tent"]
    assert [listing.product for listing in second.listings] == ["Garden Trowel", "kettle"]
    assert second.warnings == ["note about garden trowel", "note about kettle"]


def test_marketplaces_are_not_mixed() -> None:
    remote = SlowRemote()
    shared = SharedSearch(remote)
    shared.search_many([q("tent", "com"), q("tent", "de")])
    assert remote.searched == ["tent", "tent"]
