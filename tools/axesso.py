"""The ``axesso`` backend: real Amazon listings (the LangChain tool around it: :mod:`tools.axesso_tool`).

For each product type: the on-disk cache first (24 h by default, so a repeated need costs no call), else
one Axesso search, all product types at once in a small thread pool. Whatever goes wrong remotely (no
key, network down, retries used up, call budget spent, no results) that product type falls back to the
``links`` backend and the outcome says why in a warning: the chain never fails because the API did.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from agent.core.concurrency import map_in_threads
from agent.core.http import HttpPolicy
from agent.core.schemas import Listing
from tools.axesso_client import AxessoClient, AxessoError, AxessoNotFound, AxessoUnavailable
from tools.axesso_parse import AxessoApiError, AxessoFormatError, parse_search
from tools.base import SearchBackend, SearchOutcome, SearchQuery
from tools.cache import DiskCache
from tools.links import LinksBackend

logger = logging.getLogger(__name__)

CACHE_FILE = "search-cache.sqlite3"
_CACHE_VERSION = "v1"  # bump when the cached payload's meaning changes
_BUDGET_KEY = f"axesso:{_CACHE_VERSION}:ratelimit"
_NO_LISTINGS = "found no listings"
_NO_KEY = (
    "is not used (RAPIDAPI_KEY is not set: get a key for the Axesso Amazon Data Service on rapidapi.com)"
)


class AxessoOptions(BaseModel):
    """What the axesso backend needs and nothing more; :func:`tools.registry.axesso_options` builds it
    from the settings. The key is a ``SecretStr``, so reprs and dumps show it masked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr | None = Field(description="RapidAPI key; None or blank: search links and a warning.")
    base_url: str = Field(description="Axesso base URL (RapidAPI's, or a proxy or test server).")
    http: HttpPolicy = Field(description="Timeouts and retries of each call.")
    cache_file: Path = Field(description="SQLite file of the search cache (and of RapidAPI's call budget).")
    cache_ttl_seconds: float = Field(ge=0, description="How long a cached search stays fresh.")
    read_cache: bool = Field(description="False: search afresh (fresh results still refresh the cache).")
    concurrency: int = Field(ge=1, description="Product types searched at once.")
    ratelimit_floor: int = Field(ge=0, description="No call once RapidAPI reports fewer calls left than this.")


def cache_key(query: SearchQuery) -> str:
    """Domain, page, sort and the keyword folded to lower case with single spaces."""
    keyword = " ".join(query.keyword.casefold().split())
    return f"axesso:{_CACHE_VERSION}:{query.domain}:{query.page}:{query.sort}:{keyword}"


@dataclass
class _Found:
    """What one product type produced, before warnings are merged across product types."""

    listings: list[Listing] = field(default_factory=list)
    calls: int = 0
    cache_hit: bool = False
    problem: str | None = None  # set when we fell back to a search link
    everywhere: bool = False  # the problem is the account's, not this product type's
    outage: bool = False  # Axesso did not answer at all (SearchOutcome.outages)


class AxessoBackend(SearchBackend):
    """Amazon listings from Axesso, cached on disk, falling back to search links."""

    name = "axesso"

    def __init__(
        self,
        options: AxessoOptions,
        *,
        client: AxessoClient | None = None,
        fallback: SearchBackend | None = None,
    ) -> None:
        self._key: SecretStr | None = options.api_key if _has_key(options.api_key) else None
        self._use_cache_reads = options.read_cache
        self._concurrency = options.concurrency
        self._cache = DiskCache(options.cache_file, options.cache_ttl_seconds)
        self._fallback = fallback or LinksBackend()
        self._client = client
        if self._client is None and self._key is not None:
            self._client = AxessoClient(
                api_key=self._key,
                base_url=options.base_url,
                policy=options.http,
                ratelimit_floor=options.ratelimit_floor,
                pool_size=options.concurrency,
            )
        if self._client is not None and self._use_cache_reads:
            remembered = self._cache.get(_BUDGET_KEY)
            if isinstance(remembered, int):
                self._client.restore_remaining(remembered)

    def __repr__(self) -> str:
        return f"AxessoBackend(key={'set' if self._key else 'missing'}, client={self._client!r})"

    # --- SearchBackend -------------------------------------------------------------------------------
    def search(self, query: SearchQuery) -> SearchOutcome:
        return self.search_many([query])

    def search_many(self, queries: Sequence[SearchQuery]) -> SearchOutcome:
        """All queries at once (bounded pool), in order; duplicates are searched once."""
        unique = list(dict.fromkeys(queries))
        if not unique:
            return SearchOutcome()
        found = map_in_threads(self._find, unique, self._concurrency)
        self._remember_budget()
        return self._merge(unique, found)

    # --- one product type ----------------------------------------------------------------------------
    def _find(self, query: SearchQuery) -> _Found:
        """Never raises: any failure becomes a search link and a reason."""
        try:
            return self._find_or_raise(query)
        except Exception as error:  # noqa: BLE001 - a bug here must not take the whole answer down
            logger.warning(
                "Axesso search for %r failed unexpectedly: %s", query.keyword, type(error).__name__
            )
            return self._fall_back(query, f"failed unexpectedly ({type(error).__name__})", outage=True)

    def _find_or_raise(self, query: SearchQuery) -> _Found:
        if self._client is None:
            return self._fall_back(query, _NO_KEY, everywhere=True)
        key = cache_key(query)
        cached = self._cache.get(key) if self._use_cache_reads else None
        if cached is not None:
            try:
                return self._found(query, self._listings(query, cached), calls=0, cache_hit=True)
            except (AxessoApiError, AxessoFormatError):
                pass  # an entry we can no longer read: search again
        try:
            payload, calls = self._client.fetch(query)
        except AxessoNotFound as error:
            return self._fall_back(query, _NO_LISTINGS, calls=error.calls)
        except AxessoError as error:
            return self._fall_back(
                query, error.reason, calls=error.calls, everywhere=error.everywhere,
                outage=isinstance(error, AxessoUnavailable),
            )
        try:
            listings = self._listings(query, payload)
        except AxessoApiError as error:
            return self._fall_back(
                query, f"answered with an error ({_scrub(str(error), self._key)})", calls=calls
            )
        except AxessoFormatError as error:
            return self._fall_back(query, f"answered with an unexpected body ({error})", calls=calls)
        self._cache.set(key, payload)  # a valid answer, even an empty one, is worth keeping
        return self._found(query, listings, calls=calls)

    def _listings(self, query: SearchQuery, payload: Any) -> list[Listing]:
        """Validated listings; raises AxessoApiError / AxessoFormatError for a body that is not results."""
        parsed = parse_search(payload, keyword=query.keyword, domain=query.domain)
        if parsed.dropped:
            logger.info(
                "Axesso: dropped %d of %d items for %r (no valid title or Amazon URL).",
                parsed.dropped,
                parsed.total,
                query.keyword,
            )
        return parsed.listings

    def _found(
        self, query: SearchQuery, listings: list[Listing], *, calls: int, cache_hit: bool = False
    ) -> _Found:
        if not listings:
            found = self._fall_back(query, _NO_LISTINGS, calls=calls)
            found.cache_hit = cache_hit
            return found
        return _Found(listings=listings, calls=calls, cache_hit=cache_hit)

    def _fall_back(
        self, query: SearchQuery, problem: str, *, calls: int = 0, everywhere: bool = False, outage: bool = False
    ) -> _Found:
        listings = self._fallback.search(query).listings
        return _Found(listings=listings, calls=calls, problem=problem, everywhere=everywhere, outage=outage)

    # --- bookkeeping ---------------------------------------------------------------------------------
    def _remember_budget(self) -> None:
        """Keep RapidAPI's remaining-calls count for later runs, until its reset (or the cache TTL)."""
        budget = self._client.reported_budget if self._client is not None else None
        if budget is not None:
            remaining, reset_seconds = budget
            self._cache.set(_BUDGET_KEY, remaining, ttl_seconds=reset_seconds)

    def _merge(self, queries: list[SearchQuery], found: list[_Found]) -> SearchOutcome:
        """One outcome; one warning per distinct problem, naming the product types it hit.

        An account-wide problem (no key, key refused, budget spent) names no product type, so the same
        warning from separate searches reads the same and can be shown once.
        """
        outcome = SearchOutcome()
        problems: dict[tuple[str, bool, bool], list[str]] = {}
        for query, item in zip(queries, found, strict=True):
            outcome.listings.extend(item.listings)
            outcome.calls += item.calls
            outcome.cache_hits += int(item.cache_hit)
            if item.problem is not None:
                problems.setdefault((item.problem, item.everywhere, item.outage), []).append(query.keyword)
        for (problem, everywhere, outage), keywords in problems.items():
            where = "" if everywhere else " for " + ", ".join(f"'{keyword}'" for keyword in keywords)
            warning = _scrub(f"Axesso {problem}{where}; showing Amazon search links instead.", self._key)
            outcome.warnings.append(warning)
            if outage:
                outcome.outages.append(warning)
        return outcome


def _has_key(key: SecretStr | None) -> bool:
    return key is not None and bool(key.get_secret_value().strip())


def _scrub(text: str, key: SecretStr | None) -> str:
    """Belt and braces: no message we build may carry the key, whatever a server echoes back."""
    if key is None or not key.get_secret_value():
        return text
    return text.replace(key.get_secret_value(), "***")
