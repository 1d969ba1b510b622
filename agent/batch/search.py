"""A search backend wrapper for batches: each distinct product type is searched once per batch.

Thousands of needs propose the same product types again and again ("garden gloves", "water bottle").
:class:`SharedSearch` sits between the chain and the real backend: the first need that proposes a product
type searches it, every later need reuses that answer (the backend's own disk cache still serves repeats
across runs). :meth:`SharedSearch.prefetch` searches a whole set of product types at once, concurrently,
so a caller that knows every product type of a chunk up front can search them in one wave. It also
counts what a batch summary reports: searches, remote calls, cache hits, reuses.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel

from tools.base import SearchBackend, SearchOutcome, SearchQuery

_Key = tuple[str, str, int, str]


class SearchStats(BaseModel):
    """What the batch asked of the search backend."""

    searched: int = 0  # distinct product types sent to the backend
    calls: int = 0  # remote API calls they took (0 for local backends)
    cache_hits: int = 0  # answered from the backend's disk cache
    reused: int = 0  # answered from an earlier need of this batch, no backend involved


def _key(query: SearchQuery) -> _Key:
    """Same product type on the same marketplace page: case and spacing do not matter."""
    return (" ".join(query.keyword.casefold().split()), query.domain, query.page, query.sort)


class SharedSearch(SearchBackend):
    """Answers each distinct query once for the lifetime of this object (one batch)."""

    name = "shared"

    def __init__(self, backend: SearchBackend, *, concurrency: int = 4) -> None:
        self.backend = backend
        self.concurrency = max(1, concurrency)
        self.stats = SearchStats()
        self._answers: dict[_Key, SearchOutcome] = {}
        self._lock = threading.Lock()

    def search(self, query: SearchQuery) -> SearchOutcome:
        return self.search_many([query])

    def prefetch(self, queries: Sequence[SearchQuery]) -> None:
        """Search every query not answered yet, de-duplicated, concurrently."""
        missing: dict[_Key, SearchQuery] = {}
        with self._lock:
            for query in queries:
                if _key(query) not in self._answers:
                    missing.setdefault(_key(query), query)  # the first spelling is searched
        if not missing:
            return
        todo = list(missing.items())
        if len(todo) == 1:
            outcomes = [self.backend.search(todo[0][1])]
        else:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(todo))) as pool:
                outcomes = list(pool.map(self.backend.search, [query for _, query in todo]))
        with self._lock:
            for (key, _), outcome in zip(todo, outcomes, strict=True):
                self._answers[key] = outcome
                self.stats.searched += 1
                self.stats.calls += outcome.calls
                self.stats.cache_hits += outcome.cache_hits

    def search_many(self, queries: Sequence[SearchQuery]) -> SearchOutcome:
        """The answers for ``queries`` in order, searching only product types this batch has not seen."""
        with self._lock:
            seen = {_key(query) for query in queries if _key(query) in self._answers}
        self.prefetch(queries)
        merged = SearchOutcome()
        with self._lock:
            self.stats.reused += len(seen)
            for query in queries:
                answer = self._answers[_key(query)]
                # Listings name the product type as this need spelled it, so ranking matches them up.
                merged.listings.extend(
                    listing
                    if listing.product == query.keyword
                    else listing.model_copy(update={"product": query.keyword})
                    for listing in answer.listings
                )
                merged.warnings.extend(w for w in answer.warnings if w not in merged.warnings)
                merged.outages.extend(w for w in answer.outages if w not in merged.outages)
        return merged
