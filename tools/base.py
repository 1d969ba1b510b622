"""The interface every search backend implements, and the models it speaks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.core.config import Domain
from agent.core.schemas import Listing

#: Axesso's ``sortBy`` values; other backends accept them and may ignore them.
SortBy = Literal["relevanceblender", "price-asc-rank", "price-desc-rank", "review-rank", "date-desc-rank"]


class SearchQuery(BaseModel):
    """One search: a product type on a marketplace."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keyword: str = Field(min_length=1, max_length=80)
    domain: Domain = "com"
    page: int = Field(default=1, ge=1, le=5)
    sort: SortBy = "relevanceblender"


class SearchOutcome(BaseModel):
    """What a backend returns for a batch of queries."""

    listings: list[Listing] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    outages: list[str] = Field(
        default_factory=list,
        description="The warnings that say the backend did not answer at all (network down, timeouts, 5xx or "
        "429 after every retry, a body that is not JSON), as against one product type finding nothing.",
    )
    calls: int = Field(default=0, description="Remote calls made (0 for local backends and cache hits).")
    cache_hits: int = 0


class SearchBackend(ABC):
    """Finds listings for product types. Implementations must never raise for a remote failure:
    they fall back (or return nothing) and say so in ``SearchOutcome.warnings``."""

    name: ClassVar[str]

    @abstractmethod
    def search(self, query: SearchQuery) -> SearchOutcome:
        """Listings for one query."""

    def search_many(self, queries: Sequence[SearchQuery]) -> SearchOutcome:
        """Listings for several queries; remote backends override this to search concurrently."""
        merged = SearchOutcome()
        for query in queries:
            outcome = self.search(query)
            merged.listings.extend(outcome.listings)
            merged.warnings.extend(outcome.warnings)
            merged.outages.extend(outcome.outages)
            merged.calls += outcome.calls
            merged.cache_hits += outcome.cache_hits
        return merged
